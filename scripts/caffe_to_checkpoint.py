"""Import Caffe BatchNorm + Scale parameters into a slim checkpoint.

    python scripts/caffe_to_checkpoint.py --caffemodel net.caffemodel \\
        --mapping '{"conv1/bn": "MyNet/conv1"}' --output_path out/model.ckpt

Same flags as `slimnorm caffe-import`; see
--help and slimnorm/export/caffe.py.
"""
import sys

from slimnorm.export.cli import caffe_main

if __name__ == '__main__':
    sys.exit(caffe_main(prog='caffe_to_checkpoint.py'))
