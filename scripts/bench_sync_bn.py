"""What synchronized batch norm costs: Inception V2 training steps on 2 towers, sync vs local.

The same command as `slimnorm-bench-sync-bn`, run from a checkout; the code is in
slimnorm/bench/sync_bn_bench.py.
"""
import sys

from slimnorm.bench.sync_bn_bench import main

if __name__ == '__main__':
    sys.exit(main())
