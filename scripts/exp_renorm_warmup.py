"""Batch renorm with and without the paper's warm-up, against batch norm (Ioffe 2017).

The same command as `slimnorm-exp-renorm-warmup`, run from a checkout; the code is in
slimnorm/bench/exp_renorm_warmup.py.
"""
import sys

from slimnorm.bench.exp_renorm_warmup import main

if __name__ == '__main__':
    sys.exit(main())
