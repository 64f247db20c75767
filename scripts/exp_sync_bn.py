"""Synchronized batch norm restores large-batch statistics to small per-replica batches.

The same command as `slimnorm-exp-sync-bn`, run from a checkout; the code is in
slimnorm/bench/exp_sync_bn.py.
"""
import sys

from slimnorm.bench.exp_sync_bn import main

if __name__ == '__main__':
    sys.exit(main())
