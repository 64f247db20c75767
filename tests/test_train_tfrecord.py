"""A slim user's workflow end to end: class folders -> TFRecords -> train -> eval.

scikit-learn's digits are written as PNG files in one folder per class
(the layout slim's flowers converter reads), converted by
slimnorm-build-tfrecords' code, trained on with slimnorm-train
--dataset_name tfrecord (the tf.data reader, not feed_dict) and evaluated by
slimnorm-eval. The accuracy must be within 1 point of the same network
trained from the in-memory arrays with the same steps and seed.
"""
import io
import json
import os

import tensorflow as tf

from slimnorm.data import convert
from slimnorm.train import config as run_config

from script_helpers import run_script
from tfrecord_helpers import digits_uint8

# Both runs converge by then: over seeds 0-3 the two stayed within 0.6
# points of each other at 600 steps, but drifted 1.4 apart at 300.
STEPS = 600
SEED = 0


def _write_class_folders(root, split):
    images, labels = digits_uint8(split)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, str(label))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f'{index:04d}.png'), 'wb') as f:
            f.write(tf.io.encode_png(image).numpy())
    return len(labels)


def test_class_folders_to_tfrecords_train_and_eval_match_arrays(tmp_path):
    from slimnorm.train import evaluation
    # The digits train split becomes the TFRecords' train split; the test
    # split, converted on its own, a held-out "validation" set.
    num_train = _write_class_folders(tmp_path / 'train_png', 'train')
    num_test = _write_class_folders(tmp_path / 'test_png', 'test')
    records, held_out = str(tmp_path / 'records'), str(tmp_path / 'held_out')
    assert convert.convert_image_folder(str(tmp_path / 'train_png'), records, 'digits',
                                        num_shards=2, validation_fraction=0.0,
                                        out=io.StringIO()) == {'train': num_train,
                                                               'validation': 0}
    convert.convert_image_folder(str(tmp_path / 'test_png'), held_out, 'digits',
                                 num_shards=1, validation_fraction=1.0, out=io.StringIO())

    train_dir = tmp_path / 'run'
    trained = run_script('train.py', '--dataset_name', 'tfrecord', '--dataset_dir', records,
                         '--train_image_size', 8, '--max_number_of_steps', STEPS,
                         '--seed', SEED, '--log_every_steps', 200, '--train_dir', train_dir,
                         timeout=240)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "on TFRecords split 'train' of " + records in trained.stdout
    assert f'Done: step {STEPS}' in trained.stdout
    evaluated = run_script('eval.py', '--checkpoint_path', train_dir, '--dataset_dir', held_out,
                           '--dataset_split_name', 'validation', timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics['num_examples'] == num_test and metrics['global_step'] == STEPS

    from slimnorm.train import loop
    arrays_dir = str(tmp_path / 'arrays')  # the same network, steps and seed, from arrays
    loop.train(run_config.TrainConfig(train_dir=arrays_dir, max_steps=STEPS, seed=SEED,
                                      log_every_steps=STEPS), log=lambda line: None)
    from_arrays = evaluation.evaluate(run_config.EvalConfig(), arrays_dir)
    assert from_arrays['num_examples'] == num_test
    assert abs(metrics['top1'] - from_arrays['top1']) <= 0.01, (metrics, from_arrays)
