"""Precise BN against numpy statistics of each layer's input, batch by batch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import slimnorm
from nets import nets_factory
from slimnorm.export import checkpoint_io, precise_bn
from tests import export_helpers as helpers

tf1 = tf.compat.v1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ['conv%d' % k for k in range(1, 6)] + ['fc6']


def _network(normalizer):
    def build(images):
        return nets_factory.get_network_fn('small_convnet', 10, is_training=True,
                                           normalizer=normalizer, fc_units=12)(images)
    return build


def _expected_statistics(build, checkpoint, image_batches, unbiased):
    """numpy mean/variance of every batch norm's input, averaged over batches."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 16, 16, 1])
        build(images)
        inputs = {}
        for layer in LAYERS:
            scope = 'SmallConvNet/%s/BatchNorm/' % layer
            # the first op of the layer's batch norm that reads its input
            consumers = [op for op in graph.get_operations() if op.name.startswith(scope)
                         and any(t.op.name == 'SmallConvNet/%s/%s' % (layer, kind)
                                 for t in op.inputs for kind in ('Conv2D', 'MatMul'))]
            inputs[layer] = [t for t in consumers[0].inputs
                             if t.op.type in ('Conv2D', 'MatMul')][0]
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, checkpoint)
            values = [sess.run(inputs, {images: b}) for b in image_batches]
    expected = {}
    for layer in LAYERS:
        per_batch = [v[layer].reshape(-1, v[layer].shape[-1]).astype(np.float64)
                     for v in values]
        prefix = 'SmallConvNet/%s/BatchNorm/' % layer
        expected[prefix + 'moving_mean'] = np.mean([x.mean(0) for x in per_batch], 0)
        expected[prefix + 'moving_variance'] = np.mean(
            [x.var(0, ddof=1 if unbiased else 0) for x in per_batch], 0)
    return expected


@pytest.mark.parametrize('normalizer,unbiased', [('batch', True), ('batch_renorm', False)])
def test_statistics_are_the_average_of_per_batch_statistics(tmp_path, normalizer, unbiased):
    # fused path: unbiased variance (slim's estimator); renorm's moments path: biased
    checkpoint = helpers.train_checkpoint(str(tmp_path / 'train'), 'small_convnet', 16,
                                          normalizer=normalizer, fc_units=12)
    image_batches = [helpers.images(6, 16, 1, seed=50 + k) for k in range(4)]
    build = _network(normalizer)
    output, changes = precise_bn.precise_bn_checkpoint(
        build, (16, 16, 1), checkpoint, str(tmp_path / 'precise' / 'model.ckpt'),
        image_batches)
    expected = _expected_statistics(build, checkpoint, image_batches, unbiased)
    old, new = checkpoint_io.read_checkpoint(checkpoint), checkpoint_io.read_checkpoint(output)
    assert sorted(changes) == sorted(expected) and len(expected) == 12
    for name, value in expected.items():
        np.testing.assert_allclose(new[name], value, rtol=1e-4, atol=1e-6)
        assert np.max(np.abs(new[name] - old[name])) > 1e-3  # the EMA was elsewhere
    assert sorted(new) == sorted(old)  # weights, global_step, ... all copied
    for name in set(old) - set(expected):
        np.testing.assert_array_equal(new[name], old[name])


def test_graphs_without_a_recomputable_update_are_refused():
    for kwargs in ({'is_training': False}, {'zero_debias_moving_mean': True}):
        with tf.Graph().as_default() as graph:
            x = tf1.placeholder(tf.float32, [None, 4])
            slimnorm.batch_norm(x, **kwargs)
            with pytest.raises(ValueError, match='is_training=True'):
                precise_bn.statistic_tensors(graph)
    with tf.Graph().as_default() as graph:
        with pytest.raises(ValueError, match='no batch norm'):
            precise_bn.statistic_tensors(graph)
    with pytest.raises(ValueError, match='batch_size=20 is larger'):
        list(precise_bn.batches(np.zeros([10, 2]), 1, 20))


def test_command_on_a_train_py_checkpoint(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))

    def run(script, *args):
        return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', script)]
                              + [str(a) for a in args], capture_output=True, text=True,
                              env=env, timeout=300, cwd=ROOT)
    trained = run('train.py', '--dataset', 'digits', '--train_dir', tmp_path / 'train',
                  '--max_steps', 20, '--batch_size', 16)
    assert trained.returncode == 0, trained.stderr[-2000:]
    done = run('precise_bn.py', '--model_name', 'small_convnet', '--dataset', 'digits',
               '--checkpoint_path', tmp_path / 'train', '--num_batches', 5,
               '--batch_size', 16, '--output_path', tmp_path / 'precise' / 'model.ckpt')
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'Wrote' in done.stdout and '10 statistics from 5 batches of 16' in done.stdout
    new = checkpoint_io.read_checkpoint(str(tmp_path / 'precise' / 'model.ckpt'))
    old = checkpoint_io.read_checkpoint(tf.train.latest_checkpoint(str(tmp_path / 'train')))
    assert sorted(new) == sorted(old)


def test_experiment_quick_run_writes_table_json_and_plot(tmp_path, capsys):
    from slimnorm.bench import exp_precise_bn as precise_bn_experiment
    assert precise_bn_experiment.main(['--quick', '--out_dir', str(tmp_path)]) == 0
    assert (tmp_path / 'exp_precise_bn.png').stat().st_size > 10000
    results = json.loads((tmp_path / 'exp_precise_bn.json').read_text())
    assert sorted(results) == sorted(s[0] for s in precise_bn_experiment.SETTINGS)
    for result in results.values():
        assert result['steps'] == [20, 40]
        assert all(0.0 <= a <= 1.0 for a in result['ema'] + result['precise'])
    assert '| test accuracy: EMA -> precise BN | step 20 | step 40 |' in capsys.readouterr().out
