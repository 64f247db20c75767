"""nets.small_convnet: shapes, variables per normalizer, training, errors."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from nets import small_convnet as sc

tf1 = tf.compat.v1
UPDATE_OPS = tf1.GraphKeys.UPDATE_OPS


def _build(shape=(4, 28, 28, 1), images=None, **kwargs):
    if images is None:
        images = tf1.placeholder(tf.float32, shape)
    with slim.arg_scope(sc.small_convnet_arg_scope(
            weight_decay=kwargs.pop('weight_decay', 0.0))):
        return sc.small_convnet(images, **kwargs)


def _variables():
    return {v.op.name: v.shape.as_list() for v in tf1.global_variables()}


@pytest.mark.parametrize('shape, sizes', [
    ((4, 28, 28, 1), [28, 14, 7, 4, 2]),
    ((4, 32, 32, 3), [32, 16, 8, 4, 2]),
    ((4, 8, 8, 1), [8, 4, 2, 1, 1]),
])
def test_end_point_shapes_for_each_input_size(shape, sizes):
    with tf.Graph().as_default():
        logits, end_points = _build(shape, fc_units=128)
        depths = sc.DEFAULT_DEPTHS
        for index, (size, depth) in enumerate(zip(sizes, depths), start=1):
            assert end_points['conv%d' % index].shape.as_list() == [
                4, size, size, depth]
        pooled = 2 if shape[1] > 8 else 1
        assert end_points['pool4'].shape.as_list() == [4, pooled, pooled, 128]
        assert end_points['global_pool'].shape.as_list() == [4, 128]
        assert end_points['fc6'].shape.as_list() == [4, 128]
        assert logits.shape.as_list() == [4, 10]
        assert list(end_points)[-2:] == ['Logits', 'Predictions']
        assert sc.small_convnet.default_image_size == 28


def test_batch_norm_variables_and_update_ops():
    with tf.Graph().as_default():
        _build(fc_units=128, depths=(8, 8, 16, 16, 32))
        variables = _variables()
        for layer, depth in [('conv1', 8), ('conv5', 32), ('fc6', 128)]:
            prefix = 'SmallConvNet/%s/BatchNorm/' % layer
            for name in ('beta', 'gamma', 'moving_mean', 'moving_variance'):
                assert variables[prefix + name] == [depth]
            # A normalized layer has no biases: beta takes their place.
            assert 'SmallConvNet/%s/biases' % layer not in variables
        assert variables['SmallConvNet/logits/biases'] == [10]
        # Two moving-average updates per normalized layer: 5 convs + fc6.
        assert len(tf1.get_collection(UPDATE_OPS)) == 12


def test_eval_mode_has_no_update_ops():
    with tf.Graph().as_default():
        _build(is_training=False)
        assert tf1.get_collection(UPDATE_OPS) == []
        assert tf1.get_collection(tf1.GraphKeys.MOVING_AVERAGE_VARIABLES) == []


@pytest.mark.parametrize('normalizer, scope, variables', [
    ('group', 'GroupNorm', {'beta', 'gamma'}),
    ('layer', 'LayerNorm', {'beta', 'gamma'}),
    ('instance', 'InstanceNorm', {'beta', 'gamma'}),
    ('batch_renorm', 'BatchNorm', {'beta', 'gamma', 'moving_mean',
                                   'moving_variance'}),
])
def test_normalizer_switch(normalizer, scope, variables):
    with tf.Graph().as_default():
        _build(normalizer=normalizer, depths=(8, 8, 16, 16, 32),
               fc_units=None if normalizer == 'instance' else 64)
        names = _variables()
        prefix = 'SmallConvNet/conv3/%s/' % scope
        found = {n[len(prefix):] for n in names if n.startswith(prefix)}
        # renorm keeps extra statistics whose exact names are the library's.
        assert variables <= found if normalizer == 'batch_renorm' else (
            found == variables)
        assert names[prefix + 'beta'] == [16]
        assert 'SmallConvNet/conv3/biases' not in names
        if normalizer != 'batch_renorm':
            assert tf1.get_collection(UPDATE_OPS) == []
            assert not any('moving' in n for n in names)


def test_no_normalizer_uses_biases_and_weight_decay():
    with tf.Graph().as_default():
        _build(normalizer=None, fc_units=32, weight_decay=1e-3)
        names = _variables()
        assert names['SmallConvNet/conv1/biases'] == [32]
        assert not any('Norm' in n for n in names)
        # 5 convs + fc6 + logits, each with an L2 loss on its weights.
        losses = tf1.get_collection(tf1.GraphKeys.REGULARIZATION_LOSSES)
        assert len(losses) == 7


def test_nchw_builds_with_per_channel_batch_norm():
    with tf.Graph().as_default():
        _, end_points = _build((2, 3, 32, 32), data_format='NCHW',
                               depths=(8, 8, 16, 16, 24), fc_units=16)
        names = _variables()
        assert names['SmallConvNet/conv1/BatchNorm/beta'] == [8]
        assert names['SmallConvNet/conv5/BatchNorm/moving_mean'] == [24]
        assert names['SmallConvNet/fc6/BatchNorm/moving_variance'] == [16]
        assert end_points['conv2'].shape.as_list() == [2, 8, 16, 16]
        assert end_points['global_pool'].shape.as_list() == [2, 24]


def test_trains_on_random_data_and_evaluates():
    rng = np.random.RandomState(0)
    images = rng.rand(16, 8, 8, 1).astype(np.float32)
    labels = rng.randint(0, 10, size=16)
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        inputs = tf1.placeholder(tf.float32, images.shape)
        logits, _ = _build(images=inputs, fc_units=32, depths=(16,) * 5)
        loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        with tf.control_dependencies(tf1.get_collection(UPDATE_OPS)):
            train_op = tf1.train.AdamOptimizer(0.01).minimize(loss)
        eval_logits, _ = _build(images=inputs, fc_units=32,
                                depths=(16,) * 5, is_training=False,
                                reuse=True)
        moving_mean = tf1.global_variables(
            'SmallConvNet/conv1/BatchNorm/moving_mean')[0]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            feed = {inputs: images}
            first = sess.run(loss, feed)
            for _ in range(40):
                sess.run(train_op, feed)
            last = sess.run(loss, feed)
            out, mean = sess.run([eval_logits, moving_mean], feed)
    assert last < 0.5 * first, (first, last)
    assert np.all(np.isfinite(out))
    # The update ops ran: the moving mean has left its initial zeros.
    assert np.abs(mean).max() > 1e-3


@pytest.mark.parametrize('kwargs, message', [
    ({'shape': (4, 28, 28)}, r'(?=.*images)(?=.*rank 3)'),
    ({'normalizer': 'batchnorm'}, 'batchnorm'),
    ({'data_format': 'NWHC'}, 'NWHC'),
    ({'depths': (32, 0)}, 'depths'),
    ({'depths': 32}, 'depths'),
    ({'fc_units': -1}, 'fc_units'),
    ({'fc_units': 16, 'normalizer': 'instance'}, 'instance'),
    ({'num_classes': 2.5}, 'num_classes'),
    ({'normalizer': 'layer', 'data_format': 'NCHW',
      'shape': (4, 1, 28, 28)}, 'NHWC'),
])
def test_errors_name_the_argument_and_value(kwargs, message):
    with tf.Graph().as_default():
        with pytest.raises((ValueError, TypeError), match=message):
            _build(**kwargs)
        assert tf1.global_variables() == []


def test_num_classes_none_returns_features():
    with tf.Graph().as_default():
        features, end_points = _build(num_classes=None, fc_units=64)
        assert features.shape.as_list() == [4, 64]
        assert 'Logits' not in end_points
