"""Deployment benchmark: TFLite / ONNX Runtime float and int8 against TF float32.

The same command as `slimnorm-bench-deploy` (`slimnorm bench deploy`), run
from a checkout; the code is in slimnorm/bench/deploy.py.
"""
import sys

from slimnorm.bench.deploy import main

if __name__ == '__main__':
    sys.exit(main(prog='bench_deploy.py'))
