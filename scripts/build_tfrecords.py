"""Write research/slim-format TFRecords from a folder of images or a loaded set.

The same command as `slimnorm build-tfrecords`, run from a checkout; the code
is in slimnorm/data/convert.py.
"""
import sys

from slimnorm.data.convert import main

if __name__ == '__main__':
    sys.exit(main(prog='build_tfrecords.py'))
