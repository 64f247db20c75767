"""Input pipeline benchmark: TFRecords + Inception preprocessing vs memory.

The same command as `slimnorm-bench-input`, run from a checkout; the code is
in slimnorm/bench/input_pipeline.py.
"""
import sys

from slimnorm.bench.input_pipeline import main

if __name__ == '__main__':
    sys.exit(main(prog='bench_input.py'))
