"""nets.inception_utils.inception_arg_scope: slim's defaults plus the switch."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tf_slim.ops.arg_scope import arg_scope_func_key

import slimnorm
from nets import inception_utils, normalizers

tf1 = tf.compat.v1


def _conv_defaults(**kwargs):
    scope = inception_utils.inception_arg_scope(**kwargs)
    return scope[arg_scope_func_key(slim.conv2d)]


def test_slim_defaults_with_slimnorm_batch_norm():
    conv = _conv_defaults()
    assert conv['normalizer_fn'] is slimnorm.batch_norm
    assert conv['normalizer_params'] == {
        'decay': 0.9997, 'epsilon': 0.001, 'scale': False,
        'updates_collections': tf1.GraphKeys.UPDATE_OPS,
        'data_format': 'NHWC'}
    assert conv['activation_fn'] is tf.nn.relu


def test_batch_norm_arguments_and_data_format_reach_the_normalizer():
    conv = _conv_defaults(batch_norm_decay=0.9, batch_norm_epsilon=0.01,
                          batch_norm_updates_collections=None,
                          batch_norm_scale=True, data_format='NCHW',
                          activation_fn=tf.nn.relu6)
    assert conv['normalizer_params'] == {
        'decay': 0.9, 'epsilon': 0.01, 'scale': True,
        'updates_collections': None, 'data_format': 'NCHW'}
    assert conv['activation_fn'] is tf.nn.relu6


def test_normalizer_switch_and_params():
    assert _conv_defaults(use_batch_norm=False)['normalizer_fn'] is None
    assert _conv_defaults(normalizer=None)['normalizer_fn'] is None
    conv = _conv_defaults(normalizer='group', normalizer_params={'groups': 8},
                          data_format='NCHW')
    assert conv['normalizer_fn'] is normalizers.group_norm
    assert conv['normalizer_params'] == {'groups': 8, 'data_format': 'NCHW'}
    conv = _conv_defaults(normalizer='batch_renorm',
                          normalizer_params={'decay': 0.5})
    assert conv['normalizer_fn'] is slimnorm.batch_norm
    assert conv['normalizer_params']['renorm'] is True
    assert conv['normalizer_params']['decay'] == 0.5


def test_unknown_normalizer_names_value_and_accepted_ones():
    with pytest.raises(ValueError) as error:
        inception_utils.inception_arg_scope(normalizer='batchnorm')
    assert "'batchnorm'" in str(error.value)
    for name in ('batch', 'group', 'layer', 'instance', 'batch_renorm'):
        assert repr(name) in str(error.value)


def test_weight_decay_and_initializer_of_conv_and_fc_layers():
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        images = tf1.placeholder(tf.float32, [1, 8, 8, 3])
        with slim.arg_scope(inception_utils.inception_arg_scope(
                weight_decay=0.5, use_batch_norm=False)):
            slim.conv2d(images, 256, [3, 3], scope='conv')
            slim.fully_connected(tf1.placeholder(tf.float32, [1, 4]), 2,
                                 scope='fc')
            # slim's scope regularizes only conv2d and fully_connected.
            slim.separable_conv2d(images, 4, [3, 3], 1, scope='separable')
        losses = tf1.get_collection(tf1.GraphKeys.REGULARIZATION_LOSSES)
        assert len(losses) == 2
        weights = tf1.global_variables('conv/weights')[0]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            loss, w = sess.run([losses[0], weights])
    np.testing.assert_allclose(loss, 0.5 * np.sum(w ** 2) / 2, rtol=1e-5)
    # Variance scaling (fan-in, factor 2): var = 2 / (3 * 3 * 3).
    assert abs(np.var(w) / (2.0 / 27) - 1) < 0.15
