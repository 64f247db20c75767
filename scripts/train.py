"""Train a nets_factory network with slimnorm normalization.

The same command as `slimnorm train`, run from a checkout; the code is in
slimnorm/cli/train.py.
"""
import sys

from slimnorm.cli.train import main

if __name__ == '__main__':
    sys.exit(main(prog='train.py'))
