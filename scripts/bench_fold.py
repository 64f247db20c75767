"""Folded vs unfolded batch norm, Inception V2 inference, one process.

    python scripts/bench_fold.py [--quick] [--batch_sizes 1,32] [--json out.json]

See slimnorm/export/fold_bench.py.
"""
import sys

from slimnorm.export.fold_bench import main

if __name__ == '__main__':
    sys.exit(main())
