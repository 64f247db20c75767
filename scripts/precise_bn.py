"""Precise batch norm: recompute a checkpoint's moving statistics.

    python scripts/precise_bn.py --model_name small_convnet --dataset digits \\
        --checkpoint_path runs/digits --output_path runs/digits_precise/model.ckpt \\
        --num_batches 200 --batch_size 32

Same flags as `slimnorm precise-bn`; see --help and
slimnorm/export/precise_bn.py.
"""
import sys

from slimnorm.export.cli import precise_bn_main

if __name__ == '__main__':
    sys.exit(precise_bn_main(prog='precise_bn.py'))
