"""Precise batch norm: recompute a checkpoint's moving statistics.

    python scripts/precise_bn.py --checkpoint_path runs/digits \\
        --output_path runs/digits_precise/model.ckpt --num_batches 200 --batch_size 32

The network and the data come from the run_config.json beside the
checkpoint (a research/slim checkpoint: give --model_name and --dataset_name).

Same flags as `slimnorm precise-bn`; see --help and
slimnorm/export/precise_bn.py.
"""
import sys

from slimnorm.export.cli import precise_bn_main

if __name__ == '__main__':
    sys.exit(precise_bn_main(prog='precise_bn.py'))
