"""research/slim's flag names on slimnorm-train / slimnorm-eval, and the older aliases."""
import subprocess
import sys

import pytest

from slimnorm.cli import eval as eval_cli
from slimnorm.cli import train as train_cli

from script_helpers import ROOT, script_env

# (slim's spelling, the older one, the field both set, a value, the parsed value)
TRAIN_PAIRS = [
    ('--model_name', '--model', 'model', 'inception_v2', 'inception_v2'),
    ('--dataset_name', '--dataset', 'dataset', 'tfrecord', 'tfrecord'),
    ('--dataset_dir', '--data_dir', 'data_dir', '/data/x', '/data/x'),
    ('--dataset_split_name', '--split', 'split', 'validation', 'validation'),
    ('--max_number_of_steps', '--max_steps', 'max_steps', '7', 7),
    ('--train_image_size', '--image_size', 'image_size', '96', 96),
]
EVAL_PAIRS = TRAIN_PAIRS[:4] + [('--eval_image_size', '--image_size', 'image_size', '96', 96)]


@pytest.mark.parametrize('slim, old, field, value, parsed', TRAIN_PAIRS)
def test_train_takes_slims_spelling_and_the_old_one(slim, old, field, value, parsed):
    parser = train_cli.build_parser()
    assert getattr(parser.parse_args([slim, value]), field) == parsed
    assert getattr(parser.parse_args([old, value]), field) == parsed


@pytest.mark.parametrize('slim, old, field, value, parsed', EVAL_PAIRS)
def test_eval_takes_slims_spelling_and_the_old_one(slim, old, field, value, parsed):
    parser = eval_cli.build_parser()
    args = ['--checkpoint_path', 'x']
    assert getattr(parser.parse_args(args + [slim, value]), field) == parsed
    assert getattr(parser.parse_args(args + [old, value]), field) == parsed


def test_slims_other_flags_reach_the_config():
    args = train_cli.build_parser().parse_args([
        '--batch_size', '16', '--learning_rate', '0.02', '--weight_decay', '4e-5',
        '--optimizer', 'adam', '--moving_average_decay', '0.999', '--train_dir', 'runs/x',
        '--labels_offset', '1', '--preprocessing_name', 'inception', '--num_readers', '2',
        '--num_preprocessing_threads', '3', '--checkpoint_exclude_scopes', 'A/Logits, A/Aux',
        '--trainable_scopes', 'A/Logits', '--ignore_missing_vars'])
    assert (args.batch_size, args.learning_rate, args.weight_decay, args.optimizer,
            args.moving_average_decay, args.train_dir) == (16, 0.02, 4e-5, 'adam', 0.999,
                                                           'runs/x')
    assert (args.labels_offset, args.preprocessing_name, args.num_readers,
            args.num_preprocessing_threads) == (1, 'inception', 2, 3)
    from slimnorm.train.config import split_scopes
    assert split_scopes(args.checkpoint_exclude_scopes) == ('A/Logits', 'A/Aux')
    assert args.ignore_missing_vars is True


def test_new_flags_are_checked_before_tensorflow_loads():
    code = ("import sys\n"
            "from slimnorm.cli import train\n"
            "try:\n"
            "    train.main(['--dataset_name', 'tfrecord', '--dataset_dir', 'd',\n"
            "                '--num_readers', '0'])\n"
            "except SystemExit as exit:\n"
            "    print('exit', exit.code, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env=script_env(), cwd=ROOT, timeout=60)
    assert result.stdout.strip() == 'exit 2 False', result.stderr[-2000:]
    assert 'num_readers' in result.stderr
