"""Precise BN vs moving averages on digits: table, JSON and PNG.

    python scripts/exp_precise_bn.py --out_dir docs
    python scripts/exp_precise_bn.py --quick --out_dir /tmp/exp

See slimnorm/export/precise_bn_experiment.py.
"""
import sys

from slimnorm.export.precise_bn_experiment import main

if __name__ == '__main__':
    sys.exit(main())
