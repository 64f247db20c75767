"""Group norm is insensitive to the batch size where batch norm is not (Wu & He 2018).

The same command as `slimnorm-exp-gn-batch-size`, run from a checkout; the code is in
slimnorm/bench/exp_gn_batch_size.py.
"""
import sys

from slimnorm.bench.exp_gn_batch_size import main

if __name__ == '__main__':
    sys.exit(main())
