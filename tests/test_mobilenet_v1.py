"""nets.mobilenet_v1: the public mobilenet_v1_1.0_224 checkpoint's variables, end
points, depth_multiplier, the factory, and quantization-aware rewriting."""
import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from nets import mobilenet_v1, nets_factory
from slimnorm import quantize
from tests.export_helpers import nchw_runs_on_cpu

tf1 = tf.compat.v1

# research/slim's nets/mobilenet_v1.py _CONV_DEFS, transcribed here on their
# own (kind, stride, depth; every kernel is 3x3): the expected variables below
# are derived from this table and slim's naming rules, not from our graph.
SLIM_CONV_DEFS = [('conv', 2, 32)] + [('sep', s, d) for s, d in (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))]
BN = ('beta', 'gamma', 'moving_mean', 'moving_variance')


def expected_variables(num_classes=1001, multiplier=1.0, min_depth=8, channels=3):
    """{name: shape} of slim's MobileNet v1 (batch norm with center and scale)."""
    expected, depth_in = {}, channels
    for index, (kind, _, depth) in enumerate(SLIM_CONV_DEFS):
        depth_out = max(int(depth * multiplier), min_depth)
        if kind == 'conv':
            layers = [('Conv2d_%d' % index, 'weights', [3, 3, depth_in, depth_out], depth_out)]
        else:
            layers = [('Conv2d_%d_depthwise' % index, 'depthwise_weights',
                       [3, 3, depth_in, 1], depth_in),
                      ('Conv2d_%d_pointwise' % index, 'weights',
                       [1, 1, depth_in, depth_out], depth_out)]
        for layer, weights, shape, outputs in layers:
            expected['MobilenetV1/%s/%s' % (layer, weights)] = shape
            for name in BN:
                expected['MobilenetV1/%s/BatchNorm/%s' % (layer, name)] = [outputs]
        depth_in = depth_out
    expected['MobilenetV1/Logits/Conv2d_1c_1x1/weights'] = [1, 1, depth_in, num_classes]
    expected['MobilenetV1/Logits/Conv2d_1c_1x1/biases'] = [num_classes]
    return expected


def _variables(size=224, num_classes=1001, **kwargs):
    with tf.Graph().as_default() as graph:
        images = tf1.placeholder(tf.float32, [1, size, size, 3])
        with slim.arg_scope(mobilenet_v1.mobilenet_v1_arg_scope()):
            logits, end_points = mobilenet_v1.mobilenet_v1(images, num_classes, **kwargs)
        variables = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
    return graph, variables, logits, end_points


def test_variables_are_those_of_the_public_checkpoint_at_224():
    _, variables, logits, end_points = _variables()
    expected = expected_variables()
    assert len(expected) == 137
    assert variables == expected
    assert logits.shape.as_list() == [1, 1001]
    assert end_points['Conv2d_13_pointwise'].shape.as_list() == [1, 7, 7, 1024]
    assert end_points['Conv2d_0'].shape.as_list() == [1, 112, 112, 32]
    assert end_points['AvgPool_1a'].shape.as_list() == [1, 1, 1, 1024]
    names = ['Conv2d_0'] + ['Conv2d_%d_%s' % (i, kind) for i in range(1, 14)
                            for kind in ('depthwise', 'pointwise')]
    assert set(end_points) == set(names) | {'AvgPool_1a', 'Logits', 'Predictions'}


def test_depth_multiplier_and_min_depth():
    _, variables, _, end_points = _variables(size=64, num_classes=10, depth_multiplier=0.25)
    assert variables == expected_variables(10, 0.25)
    assert variables['MobilenetV1/Conv2d_0/weights'] == [3, 3, 3, 8]  # min_depth 8
    assert end_points['AvgPool_1a'].shape.as_list() == [1, 1, 1, 256]  # 2x2 kernel
    with pytest.raises(ValueError, match='depth_multiplier'):
        _variables(size=32, depth_multiplier=0)
    with pytest.raises(ValueError, match='final_endpoint'):
        with tf.Graph().as_default():
            mobilenet_v1.mobilenet_v1_base(tf.zeros([1, 32, 32, 3]), final_endpoint='Conv2d_99')


def test_base_stops_at_final_endpoint_and_output_stride_keeps_resolution():
    with tf.Graph().as_default():
        net, end_points = mobilenet_v1.mobilenet_v1_base(
            tf.zeros([1, 64, 64, 3]), final_endpoint='Conv2d_3_depthwise',
            depth_multiplier=0.25)
        assert list(end_points)[-1] == 'Conv2d_3_depthwise'
        assert net.shape.as_list() == [1, 16, 16, 32]
    with tf.Graph().as_default():
        net, _ = mobilenet_v1.mobilenet_v1_base(tf.zeros([1, 64, 64, 3]), output_stride=8,
                                                depth_multiplier=0.25,
                                                use_explicit_padding=True)
        assert net.shape.as_list() == [1, 8, 8, 256]


def test_factory_builds_it_trains_it_and_quantizes_it():
    """One SGD step of a small MobileNet from nets_factory, rewritten for QAT."""
    assert nets_factory.get_network_fn('mobilenet_v1', 5).default_image_size == 224
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        network_fn = nets_factory.get_network_fn('mobilenet_v1', 5, is_training=True,
                                                 depth_multiplier=0.25)
        images = tf.constant(np.random.RandomState(0).uniform(
            -1, 1, (4, 32, 32, 3)).astype(np.float32))
        logits, _ = network_fn(images)
        loss = tf1.losses.sparse_softmax_cross_entropy(tf.constant([0, 1, 2, 3]), logits)
        layers = quantize.create_training_graph(quant_delay=0)
        # 27 convolutions with batch norm folded, and the logits layer.
        assert len(layers) == 28 and sum(bool(layer.batch_norm) for layer in layers) == 27
        assert layers[-1].scope == 'MobilenetV1/Logits/Conv2d_1c_1x1'
        updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        assert len(updates) == 54
        train = tf1.train.GradientDescentOptimizer(0.1).minimize(
            loss, global_step=tf1.train.get_or_create_global_step())
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            before = sess.run(loss)
            sess.run([train] + updates)
            assert np.isfinite(before) and np.isfinite(sess.run(loss))
            ranges = {v.op.name: v for v in tf1.global_variables()}
            assert sess.run(ranges['MobilenetV1/Conv2d_0/act_quant/max']) < 6.0
            assert 'MobilenetV1/Conv2d_1_depthwise/weights_quant/max' in ranges


@pytest.mark.skipif(not nchw_runs_on_cpu(), reason='no NCHW convolution on this CPU build')
def test_nchw_computes_what_nhwc_does():
    images = np.random.RandomState(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    outputs, values = [], None
    for data_format in ('NHWC', 'NCHW'):
        with tf.Graph().as_default():
            tf1.set_random_seed(0)
            network_fn = nets_factory.get_network_fn('mobilenet_v1', 5, depth_multiplier=0.25,
                                                     data_format=data_format)
            inputs = tf.constant(images if data_format == 'NHWC'
                                 else images.transpose(0, 3, 1, 2))
            logits, _ = network_fn(inputs)
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                if values is None:
                    values = {v.op.name: sess.run(v) for v in tf1.global_variables()}
                else:
                    assert sorted(values) == sorted(v.op.name for v in tf1.global_variables())
                    for variable in tf1.global_variables():
                        variable.load(values[variable.op.name], sess)
                outputs.append(sess.run(logits))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
