"""research/slim's train_image_classifier.py, run by slimnorm.

A slim command line runs unchanged but for this script's directory:

    python scripts/train_image_classifier.py --train_dir=/tmp/flowers \\
        --dataset_name=tfrecord --dataset_dir=/data/flowers \\
        --model_name=inception_v2 --optimizer=rmsprop --max_number_of_steps=1000

Every flag of slim's script is accepted with its default (docs/slim_flags.md);
the code is slimnorm/cli/train.py (`slimnorm train`).
"""
import sys

from slimnorm.cli.train import main

if __name__ == '__main__':
    sys.exit(main(prog='train_image_classifier.py'))
