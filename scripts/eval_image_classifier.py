"""research/slim's eval_image_classifier.py, run by slimnorm.

A slim command line runs unchanged but for this script's directory:

    python scripts/eval_image_classifier.py --checkpoint_path=/tmp/flowers \\
        --eval_dir=/tmp/flowers/eval --dataset_split_name=validation

Every flag of slim's script is accepted with its default (docs/slim_flags.md);
the code is slimnorm/cli/eval.py (`slimnorm eval`).
"""
import sys

from slimnorm.cli.eval import main

if __name__ == '__main__':
    sys.exit(main(prog='eval_image_classifier.py'))
