"""Should training and evaluation turn oneDNN on, or pin the thread pools?

The same command as `slimnorm-bench-config`, run from a checkout; the code is in
slimnorm/bench/session_config.py.
"""
import sys

from slimnorm.bench.session_config import main

if __name__ == '__main__':
    sys.exit(main())
