"""Evaluate a checkpoint of scripts/train.py (`slimnorm train`).

The same command as `slimnorm eval`, run from a checkout; the code is in
slimnorm/cli/eval.py.
"""
import sys

from slimnorm.cli.eval import main

if __name__ == '__main__':
    sys.exit(main(prog='eval.py'))
