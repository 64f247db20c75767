"""run_config.json as a run's one source of truth (issue 21, items 1-4), as a user runs it.

Each case of the issue, through the scripts in subprocesses: a digits run
exported with only --model_name/--checkpoint_path/--output_file; flags that
contradict the run; precise BN on TFRecords and on 28x28x1 IDX data; the
wrong network in a train_dir with and without run_config.json (the
directory hashed before and after); eval's warning after 60 steps and its
silence on a converged run.
"""
import gzip
import hashlib
import json
import os
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf

from nets import small_convnet
from slimnorm.data import datasets
from slimnorm.export import checkpoint_io, freeze, verify
from tests import export_helpers as helpers

from script_helpers import run_script
from tfrecord_helpers import write_digits

tf1 = tf.compat.v1
NOT_TF_LOGS = ('WARNING: All log messages', 'I0000 ', 'W0000 ')


def _lines(stderr):
    """stderr without TensorFlow's start-up logging."""
    return [line for line in stderr.strip().splitlines() if not line.startswith(NOT_TF_LOGS)]


def _refused(done, *words):
    lines = _lines(done.stderr)
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and 'Traceback' not in done.stderr, done.stderr[-2000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _train(train_dir, *flags, steps=60):
    done = run_script('train.py', '--train_dir', train_dir, '--max_number_of_steps', steps,
                      '--batch_size', 32, '--log_every_steps', 1000, *flags, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return tf.train.latest_checkpoint(str(train_dir))


def _tree_hash(directory):
    """sha256 of every file's relative path and bytes, and of the empty directories."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(directory)):
        dirs.sort()
        digest.update(os.path.relpath(root, directory).encode())
        for name in sorted(files):
            digest.update(name.encode())
            with open(os.path.join(root, name), 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


@pytest.fixture(scope='module')
def digits_60(tmp_path_factory):
    """A 60-step digits run (slim's flags, the project's defaults): its train_dir."""
    train_dir = tmp_path_factory.mktemp('rc') / 'digits60'
    _train(train_dir, '--dataset_name', 'digits')
    return train_dir


# --- 1 and 2: export -------------------------------------------------------------

def test_digits_run_exports_from_run_config_with_only_the_model_name(digits_60, tmp_path):
    out = tmp_path / 'x.pb'
    done = run_script('export_inference_graph.py', '--model_name', 'small_convnet',
                      '--checkpoint_path', digits_60, '--output_file', out,
                      '--saved_model_dir', tmp_path / 'sm')
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'checked on 16 digits images' in done.stdout
    graph_def = freeze.read_graph_def(str(out))
    placeholder = next(n for n in graph_def.node if n.name == 'input')
    assert [d.size for d in placeholder.attr['shape'].shape.dim] == [-1, 8, 8, 1]
    # The checkpoint's eval-mode logits from a graph built here from nets_factory.
    images = datasets.load('digits').test_images[:40]
    expected = helpers.eval_logits(tf.train.latest_checkpoint(str(digits_60)),
                                   'small_convnet', images, num_classes=10)
    np.testing.assert_array_equal(freeze.run_graph_def(graph_def, images)[0], expected)
    served = tf.saved_model.load(str(tmp_path / 'sm')).signatures['serving_default'](
        input=tf.constant(images))
    assert helpers.rel_err(served['logits'].numpy(), expected) < 1e-5
    assert sorted(os.listdir(tmp_path)) == ['sm', 'x.pb']  # no temporary left


@pytest.mark.parametrize('flags, words', [
    (['--model_name', 'inception_v2'], ["model_name='inception_v2'", "model='small_convnet'"]),
    (['--image_size', 28], ['image_size=28', '=8', '--export_image_size']),
    (['--num_channels', 3], ['num_channels=3', 'channels=1']),
    (['--dataset_name', 'imagenet'], ["dataset_name='imagenet' (1001 classes)",
                                      "dataset='digits' (10 classes)"]),
    (['--normalizer', 'group'], ["normalizer='group'", "normalizer='batch'"]),
])
def test_a_flag_contradicting_the_run_is_refused_naming_both_values(digits_60, tmp_path,
                                                                    flags, words):
    done = run_script('export_inference_graph.py', '--checkpoint_path', digits_60,
                      '--output_file', tmp_path / 'x.pb', *flags)
    _refused(done, *words)
    assert not os.listdir(tmp_path)


def test_export_image_size_exports_the_convolutional_net_at_another_size(digits_60, tmp_path):
    done = run_script('export_inference_graph.py', '--checkpoint_path', digits_60,
                      '--export_image_size', 16, '--output_file', tmp_path / 'x16.pb')
    assert done.returncode == 0, done.stderr[-2000:]
    images = verify.random_images((16, 16, 1), 5, seed=3)
    expected = helpers.eval_logits(tf.train.latest_checkpoint(str(digits_60)),
                                   'small_convnet', images, num_classes=10)
    got = freeze.run_graph_def(freeze.read_graph_def(str(tmp_path / 'x16.pb')), images)[0]
    np.testing.assert_array_equal(got, expected)


def test_a_slim_checkpoint_without_run_config_is_checked_variable_by_variable(digits_60,
                                                                              tmp_path):
    slim_dir = tmp_path / 'slim'
    shutil.copytree(digits_60, slim_dir, ignore=shutil.ignore_patterns('run_config.json',
                                                                       'events.*'))
    with open(slim_dir / 'checkpoint', 'w') as f:  # relative paths, as a moved run
        name = os.path.basename(tf.train.latest_checkpoint(str(digits_60)))
        f.write(f'model_checkpoint_path: "{name}"\n')
    done = run_script('export_inference_graph.py', '--model_name', 'small_convnet',
                      '--dataset_name', 'digits', '--checkpoint_path', slim_dir,
                      '--output_file', tmp_path / 'x.pb')
    _refused(done, 'variable SmallConvNet/conv1/weights', '[3, 3, 3, 32] in the graph',
             '[3, 3, 1, 32] in checkpoint')
    assert not (tmp_path / 'x.pb').exists()
    done = run_script('export_inference_graph.py', '--model_name', 'small_convnet',
                      '--dataset_name', 'digits', '--image_size', 8, '--num_channels', 1,
                      '--checkpoint_path', slim_dir, '--output_file', tmp_path / 'x.pb')
    assert done.returncode == 0 and 'checked on 16 random images' in done.stdout, done.stderr
    done = run_script('eval.py', '--checkpoint_path', slim_dir, '--dataset_name', 'digits',
                      '--model_kwargs', '{"depths": [32, 64, 64, 128, 64]}')
    _refused(done, 'variable SmallConvNet/conv5/weights has shape [3, 3, 128, 64] in the '
             'graph but [3, 3, 128, 128] in checkpoint')


def test_verify_then_commit_leaves_the_old_file_when_the_artifact_is_wrong(tmp_path):
    final = tmp_path / 'model.bin'
    final.write_bytes(b'the previous export')
    reference = np.arange(12, dtype=np.float32).reshape(3, 4)

    def write(path):
        np.save(open(path, 'wb'), reference + 0.01)

    def run(path, images):
        return np.load(path)

    with pytest.raises(verify.ExportMismatchError, match='relative error 0.000909'):
        verify.write_verified(str(final), write, run, np.zeros([3, 1]), reference)
    assert final.read_bytes() == b'the previous export'
    assert sorted(os.listdir(tmp_path)) == ['model.bin']
    # 0.01 / 11 (the largest reference logit) is within a tolerance of 1e-3.
    error = verify.write_verified(str(final), write, run, np.zeros([3, 1]), reference,
                                  tolerance=1e-3)
    assert error == pytest.approx(0.01 / 11, rel=1e-3)
    np.testing.assert_array_equal(np.load(str(final)), reference + 0.01)


# --- 2: training writes nothing before its checks ---------------------------------------

def test_wrong_network_in_a_train_dir_without_run_config_leaves_it_byte_for_byte(digits_60,
                                                                                 tmp_path):
    slim_dir = tmp_path / 'slim'
    shutil.copytree(digits_60, slim_dir, ignore=shutil.ignore_patterns('run_config.json'))
    before = _tree_hash(slim_dir)
    done = run_script('train.py', '--model_name', 'inception_v2', '--dataset_name', 'digits',
                      '--train_image_size', 32, '--train_dir', slim_dir,
                      '--max_number_of_steps', 2, '--batch_size', 2, timeout=300)
    _refused(done, 'variable InceptionV2/', 'is not in checkpoint', 'a new train_dir')
    assert _tree_hash(slim_dir) == before


def test_wrong_network_in_a_train_dir_with_run_config_leaves_it_byte_for_byte(digits_60,
                                                                              tmp_path):
    before = _tree_hash(digits_60)
    done = run_script('train.py', '--normalizer', 'group', '--dataset_name', 'digits',
                      '--train_dir', digits_60, '--max_number_of_steps', 70)
    _refused(done, "normalizer='group' (was 'batch')")
    done = run_script('train.py', '--model_kwargs', '{"depths": [8, 8]}',
                      '--train_dir', digits_60, '--max_number_of_steps', 70)
    _refused(done, 'model_kwargs=')
    assert _tree_hash(digits_60) == before
    # Fine-tuning takes the source's network; a flag that contradicts it is refused.
    done = run_script('train.py', '--checkpoint_path', digits_60, '--normalizer', 'layer',
                      '--train_dir', tmp_path / 'tuned')
    _refused(done, "normalizer='layer'", "normalizer='batch'")
    assert not (tmp_path / 'tuned').exists()


# --- 3: precise BN reads the run's own data ---------------------------------------------

def _conv1_means(checkpoint, batches, shape):
    """Average over batches of conv1's per-channel mean, by TensorFlow's conv2d here."""
    weights = tf.train.load_checkpoint(checkpoint).get_tensor('SmallConvNet/conv1/weights')
    means = [tf.reduce_mean(tf.nn.conv2d(batch.astype(np.float32), weights, 1, 'SAME'),
                            [0, 1, 2]).numpy().astype(np.float64) for batch in batches]
    assert all(batch.shape[1:] == shape for batch in batches)
    return np.mean(means, 0)


def _write_idx(path, array):
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(
        '>' + 'I' * array.ndim, *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fashion_shaped(directory, train=256, test=64):
    """28x28x1 IDX files in Fashion-MNIST's layout: class k is a bright band at row 2k."""
    rng = np.random.RandomState(0)
    os.makedirs(directory)
    for split, count in (('train', train), ('t10k', test)):
        labels = rng.randint(0, 10, count)
        images = rng.randint(0, 60, (count, 28, 28))
        for image, label in zip(images, labels):
            image[2 * label + 4:2 * label + 8, 4:24] = 250
        _write_idx(os.path.join(directory, f'{split}-images-idx3-ubyte.gz'), images)
        _write_idx(os.path.join(directory, f'{split}-labels-idx1-ubyte.gz'), labels)
    return directory


def test_precise_bn_on_fashion_mnist_shaped_data_uses_the_runs_data(tmp_path):
    data_dir = _fashion_shaped(str(tmp_path / 'idx'))
    checkpoint = _train(tmp_path / 'run', '--dataset_name', 'mnist_dir', '--dataset_dir',
                        data_dir, steps=30)
    done = run_script('precise_bn.py', '--checkpoint_path', tmp_path / 'run', '--num_batches',
                      4, '--batch_size', 16, '--output_path', tmp_path / 'precise' / 'model.ckpt')
    assert done.returncode == 0, done.stderr[-2000:]
    assert "of mnist_dir split 'train'" in done.stdout
    saved = json.loads((tmp_path / 'precise' / 'run_config.json').read_text())
    assert saved['dataset'] == 'mnist_dir' and saved['input_shape'] == [28, 28, 1]
    assert saved['precise_bn']['num_batches'] == 4
    # The batches training draws (BatchSchedule, seed 0) of the IDX files read here.
    train = datasets.load_idx_dir(data_dir).train_images
    schedule = datasets.BatchSchedule(len(train), 16, 0)
    batches = [train[schedule.indices(step)] for step in range(4)]
    new = checkpoint_io.read_checkpoint(str(tmp_path / 'precise' / 'model.ckpt'))
    np.testing.assert_allclose(new['SmallConvNet/conv1/BatchNorm/moving_mean'],
                               _conv1_means(checkpoint, batches, (28, 28, 1)),
                               rtol=1e-4, atol=1e-6)
    evaluated = run_script('eval.py', '--checkpoint_path', tmp_path / 'precise')
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics['dataset'] == 'mnist_dir' and metrics['num_examples'] == 64
    assert 'cannot be trusted yet' not in evaluated.stdout  # recomputed, not an EMA


def test_precise_bn_on_tfrecords_with_slims_flags(tmp_path):
    from slimnorm.export import precise_bn_run
    from slimnorm.train.config import ModelConfig
    data_dir = write_digits(str(tmp_path / 'records'))
    checkpoint = _train(tmp_path / 'run', '--dataset_name', 'tfrecord', '--dataset_dir',
                        data_dir, '--train_image_size', 8, steps=30)
    before = _tree_hash(tmp_path / 'run')
    done = run_script('precise_bn.py', '--checkpoint_path', tmp_path / 'run',
                      '--dataset_split_name', 'train', '--num_batches', 3, '--batch_size', 16,
                      '--output_path', tmp_path / 'precise' / 'model.ckpt')
    assert done.returncode == 0, done.stderr[-2000:]
    assert _tree_hash(tmp_path / 'run') == before
    # The same deterministic training pipeline, read again here.
    config = ModelConfig(dataset='tfrecord', data_dir=data_dir, image_size=8)
    _, _, batches = precise_bn_run.training_batches(config, 'train', 3, 16)
    batches = list(batches)
    assert all(b.min() >= -1 and b.max() <= 1 for b in batches)  # slim's [-1, 1] images
    new = checkpoint_io.read_checkpoint(str(tmp_path / 'precise' / 'model.ckpt'))
    np.testing.assert_allclose(new['SmallConvNet/conv1/BatchNorm/moving_mean'],
                               _conv1_means(checkpoint, batches, (8, 8, 3)),
                               rtol=1e-4, atol=1e-6)
    evaluated = run_script('eval.py', '--checkpoint_path', tmp_path / 'precise',
                           '--dataset_split_name', 'test')
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])['dataset'] == 'tfrecord'
    # A flag that contradicts the run, and a directory that is not new: refused.
    done = run_script('precise_bn.py', '--checkpoint_path', tmp_path / 'run', '--dataset_name',
                      'digits', '--output_path', tmp_path / 'other' / 'model.ckpt')
    _refused(done, "dataset_name='digits'", "dataset='tfrecord'")
    done = run_script('precise_bn.py', '--checkpoint_path', tmp_path / 'run',
                      '--output_path', tmp_path / 'precise' / 'model.ckpt')
    _refused(done, 'exists and is not empty')


# --- 4: eval says when the moving statistics cannot be trusted yet ---------------------

def test_eval_after_60_steps_warns_with_the_numbers(digits_60):
    done = run_script('eval.py', '--checkpoint_path', digits_60)
    assert done.returncode == 0, done.stderr[-2000:]
    warning = [line for line in done.stdout.splitlines() if line.startswith('warning:')]
    assert len(warning) == 1, done.stdout
    decay = small_convnet.BATCH_NORM_DEFAULTS['decay']
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(digits_60)))
    variances = np.concatenate([reader.get_tensor(name) for name in
                                reader.get_variable_to_shape_map()
                                if name.endswith('moving_variance')])
    for text in ('after 60 steps', f'at decay {decay:g}', f'{decay ** 60:.1%} of their start',
                 f'on average {np.mean(np.abs(variances - 1.0)):.3f} from 1.0',
                 'lower batch-norm decay', 'longer training', 'precise BN'):
        assert text in warning[0], (text, warning[0])
    metrics = json.loads(done.stdout.strip().splitlines()[-1])  # still the last line
    assert metrics['global_step'] == 60


def test_a_converged_run_evaluates_without_the_warning(tmp_path):
    # The way out the warning names: a lower decay (0.9 ** 60 = 0.2 %).
    _train(tmp_path / 'run', '--dataset_name', 'digits', '--model_kwargs',
           '{"normalizer_params": {"decay": 0.9}}')
    done = run_script('eval.py', '--checkpoint_path', tmp_path / 'run')
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'warning' not in done.stdout and 'top-1 accuracy' in done.stdout


@pytest.mark.parametrize('model, kwargs, size', [
    ('small_convnet', {}, 8),
    ('small_convnet', {'normalizer_params': {'decay': 0.9}}, 8),
    ('inception_v2', {}, 64),
    ('inception_v2', {'batch_norm_decay': 0.95}, 64),
])
def test_the_warnings_decay_is_the_one_in_the_training_graph(model, kwargs, size):
    from nets import nets_factory
    from slimnorm.train import evaluation
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, size, size, 3])
        nets_factory.get_network_fn(model, 10, is_training=True, **kwargs)(images)
    # The update v -= (v - value) * (1 - decay) of the first moving variance.
    update = next(op for op in graph.get_operations()
                  if op.type in ('AssignSubVariableOp', 'AssignSub')
                  and op.inputs[0].op.name.endswith('moving_variance'))
    constant = next(t.op for t in update.inputs[1].op.inputs if t.op.type == 'Const')
    one_minus_decay = tf.make_ndarray(constant.get_attr('value'))
    decay, _ = evaluation.batch_norm_decay(model, kwargs)
    assert 1.0 - decay == pytest.approx(float(one_minus_decay), rel=1e-6)
