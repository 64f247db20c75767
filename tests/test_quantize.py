"""slimnorm.quantize: the folded training graph against the unfolded one, delays, refusals."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import quantize
from tests.export_helpers import nchw_runs_on_cpu

tf1 = tf.compat.v1
BATCH = 16
LAYOUTS = ['NHWC', pytest.param('NCHW', marks=pytest.mark.skipif(
    not nchw_runs_on_cpu(), reason='no NCHW convolution on this CPU build'))]


def _net(images, is_training, data_format, normalizer_fn=slimnorm.batch_norm):
    """conv+BN+ReLU, depthwise+BN+ReLU6, conv+BN+ReLU, fc+BN (no activation), logits."""
    params = {'is_training': is_training, 'scale': True, 'decay': 0.9,
              'data_format': data_format}
    if normalizer_fn is not slimnorm.batch_norm:
        params = {}
    axes = [1, 2] if data_format == 'NHWC' else [2, 3]
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d, slim.fully_connected],
                        normalizer_fn=normalizer_fn, normalizer_params=params), \
            slim.arg_scope([slim.conv2d, slim.separable_conv2d], data_format=data_format):
        net = slim.conv2d(images, 6, [3, 3], scope='conv1')
        net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=2,
                                    activation_fn=tf.nn.relu6, scope='dw2')
        net = slim.conv2d(net, 5, [1, 1], scope='conv3')
        net = tf.reduce_mean(net, axes)
        net = slim.fully_connected(net, 7, activation_fn=None, scope='fc4')
        return slim.fully_connected(net, 3, activation_fn=None, normalizer_fn=None,
                                    scope='logits')


def _images(data_format, seed=0):
    images = np.random.RandomState(seed).normal(0.0, 1.0, (BATCH, 6, 6, 3)).astype(np.float32)
    return images if data_format == 'NHWC' else images.transpose(0, 3, 1, 2)


def _build(data_format, quantized, values=None, is_training=True, **kwargs):
    """Graph, session, feeds and fetches of the net with a loss and its gradients."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(1)
        shape = [BATCH, 6, 6, 3] if data_format == 'NHWC' else [BATCH, 3, 6, 6]
        images = tf1.placeholder(tf.float32, shape)
        logits = _net(images, is_training, data_format)
        loss = tf.reduce_sum(tf.sin(logits))
        if quantized and is_training:
            quantize.create_training_graph(**kwargs)
        elif quantized:
            quantize.create_eval_graph()
            return graph, _session(graph, values), images, logits
        trainable = sorted(tf1.trainable_variables(), key=lambda v: v.op.name)
        grads = tf.gradients(loss, trainable)
        updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    return graph, _session(graph, values), images, [logits, loss], grads, trainable, updates


def _session(graph, values):
    """A session on ``graph``, variables initialized, then set from ``values`` by name."""
    with graph.as_default():
        sess = tf1.Session(graph=graph)
        sess.run(tf1.global_variables_initializer())
        for variable in tf1.global_variables():
            if values and variable.op.name in values:
                variable.load(values[variable.op.name], sess)
    return sess


def _values(graph, sess):
    with graph.as_default():
        return {v.op.name: sess.run(v) for v in tf1.global_variables()}


@pytest.mark.parametrize('data_format', LAYOUTS)
def test_folded_training_graph_equals_unfolded_before_delays(data_format):
    plain = _build(data_format, quantized=False)
    values = _values(plain[0], plain[1])
    # Moving statistics away from 0/1, so the moving sigma in the folded
    # weights and the correction sigma / sigma_B really cancel.
    rng = np.random.RandomState(3)
    for name in values:
        if name.endswith(('moving_mean', 'gamma', 'beta')):
            values[name] = rng.normal(0.5, 0.3, values[name].shape).astype(np.float32)
        if name.endswith('moving_variance'):
            values[name] = rng.uniform(0.5, 3.0, values[name].shape).astype(np.float32)
    folded = _build(data_format, quantized=True, values=values, quant_delay=100,
                    freeze_bn_delay=200)
    plain = _build(data_format, quantized=False, values=values)
    feed = _images(data_format)
    results = []
    for graph, sess, images, loss, grads, trainable, _ in (plain, folded):
        results.append(sess.run(loss + grads, {images: feed}))
        names = [v.op.name for v in trainable]
    assert names == sorted(names)
    expected, actual = results
    # The logits, then the gradient as one vector: relative
    # error <= 1e-5 (the float32 round-off of the unfolded graph itself, NHWC
    # against NCHW, is of the same order: the folded form sums in another order).
    assert np.abs(actual[0] - expected[0]).max() <= 1e-5 * np.abs(expected[0]).max()
    scale = max(float(np.abs(g).max()) for g in expected[2:])
    for name, want, got in zip(names, expected[2:], actual[2:]):
        assert np.abs(got - want).max() <= 1e-5 * scale, name
    fake_quants = sorted(op.name for op in folded[0].get_operations()
                         if op.type.startswith('FakeQuant') and not op.type.endswith('Gradient'))
    assert fake_quants == sorted('%s/%s_quant/FakeQuant' % (layer, kind)
                                 for layer in ('conv1', 'dw2', 'conv3', 'fc4', 'logits')
                                 for kind in ('weights', 'act'))


def _run_steps(data_format, steps, **kwargs):
    """Trains the quantized net; per step: variables before it and its logits."""
    graph, sess, images, (logits, loss), _, _, updates = _build(data_format, True, **kwargs)
    with graph.as_default():
        step = tf1.train.get_global_step()
        train = tf1.train.GradientDescentOptimizer(0.01).minimize(loss, global_step=step)
        train = tf.group(train, *updates)
    history = []
    for index in range(steps):
        before = _values(graph, sess)
        out = sess.run([logits, train], {images: _images(data_format, seed=index)})[0]
        history.append((before, out))
    return graph, sess, history


@pytest.mark.parametrize('data_format', LAYOUTS)
def test_ranges_move_and_statistics_freeze_after_the_delays(data_format):
    graph, sess, history = _run_steps(data_format, 6, quant_delay=2, freeze_bn_delay=3)
    final = _values(graph, sess)
    states = [before for before, _ in history] + [final]
    moving = 'conv1/BatchNorm/moving_mean'
    # Steps 0-2 update the moving statistics; from step 3 (freeze) they stay.
    for index in range(3):
        assert not np.array_equal(states[index][moving], states[index + 1][moving])
    for index in range(3, 6):
        for name in (moving, 'fc4/BatchNorm/moving_variance'):
            np.testing.assert_array_equal(states[index][name], states[index + 1][name])
    # The activation ranges move at every step, before and after quant_delay.
    for index in range(6):
        for name in ('conv1/act_quant/max', 'logits/act_quant/min', 'logits/act_quant/max'):
            assert states[index][name] != states[index + 1][name], (index, name)
    # The first step set them to its batch's range (ReLU outputs: min 0).
    assert all(state['conv1/act_quant/min'] == 0.0 for state in states[1:])
    assert 0.0 < states[1]['conv1/act_quant/max'] < 6.0
    assert -6.0 < states[1]['logits/act_quant/min'] < 0.0
    # The weight ranges: max |w * gamma / sigma| per output channel of the
    # last step's weights (read before its update).
    last = states[5]
    folded = last['conv1/weights'] * last['conv1/BatchNorm/gamma'] / np.sqrt(
        last['conv1/BatchNorm/moving_variance'] + 0.001)
    np.testing.assert_allclose(final['conv1/weights_quant/max'],
                               np.abs(folded).max(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(final['conv1/weights_quant/min'],
                                  -final['conv1/weights_quant/max'])
    # Before quant_delay the logits take many values; after, at most 256.
    assert len(np.unique(history[1][1])) == history[1][1].size
    assert len(np.unique(history[4][1])) < history[4][1].size


@pytest.mark.parametrize('data_format', LAYOUTS)
def test_training_after_both_delays_is_the_eval_graph(data_format):
    """Past both delays, a training step's forward pass is create_eval_graph's."""
    graph, sess, history = _run_steps(data_format, 4, quant_delay=1, freeze_bn_delay=1)
    values = _values(graph, sess)
    # The last step read the ranges after its own update, which `values` hold;
    # its weights were those before the step.
    weights = {name: value for name, value in history[3][0].items()
               if not name.endswith(('act_quant/min', 'act_quant/max'))}
    eval_graph, eval_sess, images, logits = _build(data_format, True, is_training=False,
                                                   values=dict(values, **weights))
    names = {v.op.name for v in eval_graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
    assert {'conv1/act_quant/min', 'dw2/act_quant/max', 'logits/act_quant/min'} <= names
    assert not any('weights_quant' in name for name in names)
    out = eval_sess.run(logits, {images: _images(data_format, seed=3)})
    np.testing.assert_allclose(out, history[3][1], rtol=1e-5, atol=1e-5)


def _refusal(build):
    graph = tf.Graph()
    with graph.as_default():
        build(tf1.placeholder(tf.float32, [2, 6, 6, 3]))
        with pytest.raises(ValueError) as info:
            quantize.create_training_graph()
    message = str(info.value)
    assert '\n' not in message
    return message


def test_unfoldable_patterns_are_refused_with_the_layer_name():
    def group_norm(images):
        slim.conv2d(images, 4, [3, 3], normalizer_fn=slimnorm.group_norm,
                    normalizer_params={'groups': 2}, scope='gn_layer')
    assert "'gn_layer'" in _refusal(group_norm) and 'GroupNorm' in _refusal(group_norm)

    def after_pool(images):
        net = slim.conv2d(images, 4, [3, 3], scope='conv')
        net = slim.max_pool2d(net, [2, 2], scope='pool')
        slimnorm.batch_norm(net, is_training=True, scope='pool_bn')
    assert "'pool_bn'" in _refusal(after_pool) and 'MaxPool' in _refusal(after_pool)

    def tensor_flag(images):
        slim.conv2d(images, 4, [3, 3], normalizer_fn=slimnorm.batch_norm,
                    normalizer_params={'is_training': tf1.placeholder(tf.bool, [])},
                    scope='cond_layer')
    assert "'cond_layer'" in _refusal(tensor_flag)

    def renorm(images):
        slim.conv2d(images, 4, [3, 3], normalizer_fn=slimnorm.batch_norm,
                    normalizer_params={'is_training': True, 'renorm': True},
                    scope='renorm_layer')
    assert "'renorm_layer'" in _refusal(renorm)

    def eval_mode(images):
        slim.conv2d(images, 4, [3, 3], normalizer_fn=slimnorm.batch_norm,
                    normalizer_params={'is_training': False}, scope='eval_layer')
    assert 'create_eval_graph' in _refusal(eval_mode)


def test_arguments_are_checked_and_a_graph_is_rewritten_once():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='quant_delay'):
            quantize.create_training_graph(quant_delay=-1)
        with pytest.raises(ValueError, match='found no convolution'):
            quantize.create_training_graph()
        _net(tf1.placeholder(tf.float32, [2, 6, 6, 3]), True, 'NHWC')
        layers = quantize.create_training_graph()
        assert [layer.scope for layer in layers] == ['conv1', 'dw2', 'conv3', 'fc4', 'logits']
        assert [bool(layer.batch_norm) for layer in layers] == [True] * 4 + [False]
        with pytest.raises(ValueError, match='quantized already'):
            quantize.create_training_graph()
