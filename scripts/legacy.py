"""Run an unedited TF1 / tf-slim script on TF 2.21: `python scripts/legacy.py script.py args...`.

The same command as `slimnorm-legacy` and `python -m slimnorm.legacy`; the code is in
slimnorm/legacy/runner.py.
"""
import sys

from slimnorm.legacy.runner import main

if __name__ == '__main__':
    sys.exit(main())
