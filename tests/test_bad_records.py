"""Bad TFRecord input: missing directory or split, corrupt records, --skip_corrupt_records.

A bad record stops training with one line naming the split and the problem,
after a checkpoint of the current step is on disk; with skip_corrupt_records
the run goes on and reports how many records it dropped.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.train import loop
from slimnorm.train.config import EvalConfig, TrainConfig

from script_helpers import run_script
from tfrecord_helpers import digits_uint8, slim_record, write_labels

GOOD = 40
PNG = 'png'


def _write_split(directory, bad_records, split='train'):
    """GOOD digits then ``bad_records`` (serialized) in one slim-named file."""
    os.makedirs(directory, exist_ok=True)
    images, labels = digits_uint8('train')
    with tf.io.TFRecordWriter(os.path.join(directory, f'digits_{split}.tfrecord')) as writer:
        for image, label in zip(images[:GOOD], labels[:GOOD]):
            writer.write(slim_record(image, label))
        for record in bad_records:
            writer.write(record)
    write_labels(directory, 10)
    return str(directory)


def _bad(kind):
    image = digits_uint8('test')[0][0]
    if kind == 'bytes':
        return slim_record(image, 3, encoded=b'these bytes are not an image')
    if kind == 'truncated':
        return slim_record(image, 3, encoded=tf.io.encode_png(image).numpy()[:40])
    if kind == 'key':
        return slim_record(image, 3, drop=('image/encoded',))
    return slim_record(image, 12)  # label outside [0, 10)


def _config(data_dir, train_dir, **fields):
    return TrainConfig(dataset='tfrecord', data_dir=data_dir, image_size=8, batch_size=8,
                       train_dir=str(train_dir), log_every_steps=1000,
                       save_every_secs=0, **fields)


@pytest.mark.parametrize('kind, words', [
    ('bytes', ['image/encoded is not JPEG, PNG, GIF or BMP bytes', 'image/format', PNG]),
    ('truncated', ['PNG']),
    ('key', ['image/encoded', 'is required']),
    ('label', ['image/class/label', 'outside [0, 10)', '12']),
])
def test_a_bad_record_stops_training_after_a_checkpoint(tmp_path, kind, words):
    data_dir = _write_split(tmp_path / 'data', [_bad(kind)])
    config = _config(data_dir, tmp_path / 'run', max_steps=50)
    with pytest.raises(loop.BadRecordError) as error:
        loop.train(config, log=lambda line: None)
    message = str(error.value)
    assert message.startswith(f"bad record in split 'train' of {data_dir}: "), message
    assert all(word in message for word in words), message
    assert '\n' not in message
    saved = tf.train.latest_checkpoint(config.train_dir)
    step = int(tf.train.load_checkpoint(saved).get_tensor('global_step'))
    assert f'stopped at step {step}, checkpoint {saved} saved' in message
    assert step < 50  # the records come round within 50 steps (6 per epoch)


def test_a_truncated_file_stops_training_naming_it_damaged(tmp_path):
    data_dir = _write_split(tmp_path / 'data', [])
    path = os.path.join(data_dir, 'digits_train.tfrecord')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(loop.BadRecordError, match="split 'train' of .*: a TFRecord file is "
                       'damaged: truncated record at [0-9]+'):
        loop.train(_config(data_dir, tmp_path / 'run', max_steps=50), log=lambda line: None)
    assert tf.train.latest_checkpoint(str(tmp_path / 'run'))


def test_the_command_exits_1_with_one_line_and_no_traceback(tmp_path):
    data_dir = _write_split(tmp_path / 'data', [_bad('bytes')])
    finished = run_script('train.py', '--dataset_name', 'tfrecord', '--dataset_dir', data_dir,
                          '--train_image_size', 8, '--batch_size', 8, '--train_dir',
                          tmp_path / 'run', '--max_number_of_steps', 50, timeout=120)
    assert finished.returncode == 1, finished.stderr[-2000:]
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: bad record in split 'train'"), finished.stderr[-2000:]
    assert 'Traceback' not in finished.stderr


def test_skip_corrupt_records_trains_on_and_counts_them(tmp_path):
    data_dir = _write_split(tmp_path / 'data', [_bad('bytes'), _bad('label')])
    # 50 steps of 8 = 400 good records = exactly 10 epochs of the 40 good ones.
    # Each epoch also holds the 2 bad records; those of the 10th epoch count
    # when they come before its last good record: 18 to 20 skipped.
    config = _config(data_dir, tmp_path / 'run', max_steps=50, skip_corrupt_records=True)
    result = loop.train(config, log=lambda line: None)
    assert result['global_step'] == 50
    assert 18 <= result['skipped_records'] <= 20, result
    from slimnorm.train import evaluation
    metrics = evaluation.evaluate(EvalConfig(dataset='tfrecord', data_dir=data_dir, image_size=8,
                                             split='train', skip_corrupt_records=True),
                                  config.train_dir)
    assert metrics['num_examples'] == GOOD
    with pytest.raises(ValueError, match="bad record in split 'train'.*image/encoded is not"):
        evaluation.evaluate(EvalConfig(dataset='tfrecord', data_dir=data_dir, split='train',
                                       image_size=8),
                            config.train_dir)


def test_a_clean_resumed_run_restarts_at_its_saved_step(tmp_path):
    data_dir = _write_split(tmp_path / 'data', [])
    config = _config(data_dir, tmp_path / 'run', max_steps=12)
    assert loop.train(config, log=lambda line: None)['global_step'] == 12
    config.max_steps = 20
    again = loop.train(config, log=lambda line: None)
    assert again['start_step'] == 12 and again['global_step'] == 20


def _one_line_error(capsys, argv):
    from slimnorm.cli import train
    with pytest.raises(SystemExit) as info:
        train.main(prog='train.py', argv=argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('train.py: error: ') and err.count('\n') == 1, err
    return err


def test_missing_dataset_dir_and_missing_split_are_one_line(tmp_path, capsys):
    base = ['--dataset_name', 'tfrecord', '--train_dir', str(tmp_path / 'run')]
    err = _one_line_error(capsys, base + ['--dataset_dir', str(tmp_path / 'nowhere')])
    for part in (str(tmp_path / 'nowhere'), 'is not a directory', '*_train_*-of-*.tfrecord',
                 f'{tmp_path} holds nothing'):
        assert part in err, err
    assert not (tmp_path / 'run').exists()  # a refused run creates no train_dir
    data_dir = _write_split(tmp_path / 'data', [])
    err = _one_line_error(capsys, base + ['--dataset_dir', data_dir,
                                          '--dataset_split_name', 'validation'])
    for part in ("no TFRecord files for split 'validation'", data_dir,
                 '*_validation.tfrecord', 'validation-[0-9]*-of-[0-9]*',
                 'digits_train.tfrecord, labels.txt'):
        assert part in err, err


def test_eval_command_reads_the_run_config_and_reports_json(tmp_path):
    data_dir = _write_split(tmp_path / 'data', [], split='validation')
    _write_split(tmp_path / 'data', [])
    config = _config(data_dir, tmp_path / 'run', max_steps=5)
    loop.train(config, log=lambda line: None)
    finished = run_script('eval.py', '--checkpoint_path', config.train_dir, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    metrics = json.loads(finished.stdout.strip().splitlines()[-1])
    assert metrics['split'] == 'validation' and metrics['num_examples'] == GOOD
    assert metrics['global_step'] == 5 and 0 <= metrics['top1'] <= 1
    assert np.isfinite(metrics['loss'])
