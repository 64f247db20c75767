"""One process vs 2 clones vs 1 ps + 2 workers on loopback: images/s, small convnet and
Inception V2.

    python scripts/bench_scale_out.py [--quick] [--out docs/scale_out_bench.json]

See slimnorm/bench/scale_out.py.
"""
import sys

from slimnorm.bench.scale_out import main

if __name__ == '__main__':
    sys.exit(main())
