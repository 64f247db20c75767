"""Import Caffe BatchNorm + Scale parameters into a slim checkpoint.

    python scripts/caffe_to_checkpoint.py --caffemodel net.caffemodel \\
        --mapping '{"conv1/bn": "MyNet/conv1"}' --output_path out/model.ckpt

Same flags as the console command `slimnorm-caffe-to-checkpoint`; see
--help and slimnorm/export/caffe.py.
"""
import sys

from slimnorm.export.cli import caffe_main

if __name__ == '__main__':
    sys.exit(caffe_main())
