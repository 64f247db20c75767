"""nets.nets_factory: networks by name, in their arg scope, kwargs routed."""

import pytest
import tensorflow as tf

from nets import nets_factory

tf1 = tf.compat.v1


def _names():
    return [v.op.name for v in tf1.global_variables()]


def test_small_convnet_by_name_in_its_arg_scope():
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(
            'small_convnet', num_classes=7, weight_decay=1e-4,
            is_training=True, normalizer='group', fc_units=16)
        assert network_fn.default_image_size == 28
        images = tf1.placeholder(tf.float32, [2, 28, 28, 1])
        logits, end_points = network_fn(images)
        assert logits.shape.as_list() == [2, 7]
        assert end_points['fc6'].shape.as_list() == [2, 16]
        assert 'SmallConvNet/conv2/GroupNorm/gamma' in _names()
        # weight_decay reached the arg scope: 5 convs + fc6 + logits.
        assert len(tf1.get_collection(
            tf1.GraphKeys.REGULARIZATION_LOSSES)) == 7


def test_is_training_and_call_overrides_reach_the_network():
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn('small_convnet', 10,
                                                 is_training=False)
        images = tf1.placeholder(tf.float32, [2, 8, 8, 1])
        network_fn(images)
        assert tf1.get_collection(tf1.GraphKeys.UPDATE_OPS) == []
        assert tf1.get_collection(tf1.GraphKeys.REGULARIZATION_LOSSES) == []
        network_fn(images, is_training=True, scope='Train')
        assert len(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)) == 10


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        nets_factory.get_network_fn('resnet_v1_50', 10)
    message = str(error.value)
    assert 'resnet_v1_50' in message
    for name in nets_factory.NETWORKS:
        assert name in message


def test_unknown_keyword_is_refused():
    with pytest.raises(ValueError, match='fc_unit'):
        nets_factory.get_network_fn('small_convnet', 10, fc_unit=128)


def test_unknown_normalizer_is_refused_when_building():
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn('small_convnet', 10,
                                                 normalizer='gn')
        with pytest.raises(ValueError, match="'gn'"):
            network_fn(tf1.placeholder(tf.float32, [2, 8, 8, 1]))


def test_inception_v2_gets_data_format_in_scope_and_network():
    with tf.Graph().as_default():
        network_fn = nets_factory.get_network_fn(
            'inception_v2', num_classes=10, is_training=True,
            data_format='NCHW', use_separable_conv=False,
            depth_multiplier=0.25, batch_norm_decay=0.99)
        assert network_fn.default_image_size == 224
        logits, end_points = network_fn(
            tf1.placeholder(tf.float32, [2, 3, 64, 64]))
        assert logits.shape.as_list() == [2, 10]
        # 16 + 16 + 24 + 16 channels: depth 32 * 0.25 is raised to min_depth.
        assert end_points['Mixed_3b'].shape.as_list() == [2, 72, 8, 8]
        beta = tf1.global_variables('InceptionV2/Mixed_3b/Branch_3/'
                                    'Conv2d_0b_1x1/BatchNorm/beta')[0]
        assert beta.shape.as_list() == [16]
        assert len(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)) == 138
