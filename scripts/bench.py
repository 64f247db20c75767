"""slimnorm's benchmark: normalisation ops and Inception V2 steps, as ratios.

The same command as `slimnorm-bench`, run from a checkout; the code is in
slimnorm/bench/run.py.
"""
import sys

from slimnorm.bench.run import main

if __name__ == '__main__':
    sys.exit(main())
