"""Batch norm trains faster and tolerates higher learning rates (Ioffe & Szegedy 2015).

The same command as `slimnorm-exp-bn-speedup`, run from a checkout; the code is in
slimnorm/bench/exp_bn_speedup.py.
"""
import sys

from slimnorm.bench.exp_bn_speedup import main

if __name__ == '__main__':
    sys.exit(main())
