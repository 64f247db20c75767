"""Start 1+ ps and 2+ workers of slimnorm-train on 127.0.0.1, stream their logs, stop them all.

    python scripts/launch_local_cluster.py --num_ps 1 --num_workers 2 -- \\
        --train_dir runs/dist --max_steps 600 --sync_replicas

See slimnorm/train/local_cluster.py.
"""
import sys

from slimnorm.train.local_cluster import main

if __name__ == '__main__':
    sys.exit(main())
