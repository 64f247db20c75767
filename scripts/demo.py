"""The demo behind `make demo`: train, evaluate, print the test accuracy.

The same command as `slimnorm-demo`, run from a checkout; the code is in
slimnorm/cli/demo.py.
"""
import sys

from slimnorm.cli.demo import main

if __name__ == '__main__':
    sys.exit(main(prog='demo.py'))
