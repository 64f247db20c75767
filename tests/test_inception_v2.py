"""nets.inception_v2: slim's variables and end points, counts, modes, errors.

The reference lists were measured from research/slim's network; they are the
layout of the public checkpoint inception_v2_2016_08_28.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from nets import inception_v2 as iv2

from reference_lists import END_POINTS_TSV, VARIABLES_TSV, read_reference

tf1 = tf.compat.v1
UPDATE_OPS = tf1.GraphKeys.UPDATE_OPS
LOGITS_SCOPE = 'InceptionV2/Logits/'


def build(shape=(2, 224, 224, 3), base=False, arg_scope=None, **kwargs):
    """Builds the network in the current graph inside its arg scope."""
    images = tf1.placeholder(tf.float32, shape)
    with slim.arg_scope(iv2.inception_v2_arg_scope(**(arg_scope or {}))):
        if base:
            return iv2.inception_v2_base(images, **kwargs)
        return iv2.inception_v2(images, **kwargs)


def variables():
    return [(v.op.name, v.shape.as_list()) for v in tf1.global_variables()]


def mismatches(got, expected):
    """A short description of where two lists differ, for assert messages."""
    for index, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return 'first difference at %d: %s != %s' % (index, a, b)
    return 'lengths %d != %d' % (len(got), len(expected))


@pytest.fixture(scope='module')
def full_net_training():
    """Variables, end points and update ops of the 1001-class net."""
    with tf.Graph().as_default():
        _, end_points = build(num_classes=1001, is_training=True)
        return {
            'variables': variables(),
            'end_points': [(k, v.shape.as_list())
                           for k, v in end_points.items()],
            'update_ops': len(tf1.get_collection(UPDATE_OPS)),
        }


def test_variables_equal_the_slim_checkpoint_layout(full_net_training):
    expected = read_reference(VARIABLES_TSV)
    assert len(expected) == 277
    got = full_net_training['variables']
    assert got == expected, mismatches(got, expected)


def test_end_points_equal_slim(full_net_training):
    expected = read_reference(END_POINTS_TSV)
    got = full_net_training['end_points']
    assert got == expected, mismatches(got, expected)


@pytest.fixture(scope='module')
def base_net():
    """inception_v2_base at its defaults, in training mode."""
    with tf.Graph().as_default():
        net, end_points = build(base=True)
        return {
            'net_is_last': net is end_points['Mixed_5c'],
            'variables': variables(),
            'end_points': [(k, v.shape.as_list())
                           for k, v in end_points.items()],
            'update_ops': len(tf1.get_collection(UPDATE_OPS)),
            'parameters': parameter_count(),
        }


def parameter_count():
    return sum(int(np.prod(v.shape.as_list()))
               for v in slim.get_model_variables())


def test_base_variables_and_end_points_equal_slim(base_net):
    expected = [row for row in read_reference(VARIABLES_TSV)
        if not row[0].startswith(LOGITS_SCOPE)]
    assert base_net['variables'] == expected, mismatches(
        base_net['variables'], expected)
    expected = read_reference(END_POINTS_TSV)[:len(iv2.END_POINTS)]
    assert base_net['end_points'] == expected
    assert base_net['net_is_last']


def reference_base_parameters(depth_multiplier=1.0, min_depth=16):
    """Sizes of the reference layout's base model variables, at a depth multiplier.

    slim's rule: every channel count d becomes max(int(d * depth_multiplier),
    min_depth). Kernel sizes do not change, nor do the stem's 3 image channels
    and its depthwise multiplier 8 (so the 24 inputs of its pointwise conv),
    while int(64 * depth_multiplier / 3) >= 8. A conv's input count is the
    sum of the previous block's branch depths; scaling the sum equals summing
    the scaled branches when every branch depth scales exactly (all of them
    are even and >= 32, so this holds for 0.5 and 1.0).
    """
    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    total = 0
    for name, shape in read_reference(VARIABLES_TSV):
        if name.startswith(LOGITS_SCOPE):
            continue
        if name.endswith('/depthwise_weights'):
            scaled = shape
        elif len(shape) == 4:
            height, width, inputs, outputs = shape
            stem = name.startswith('InceptionV2/Conv2d_1a_7x7/')
            scaled = [height, width, inputs if stem else depth(inputs), depth(outputs)]
        else:  # beta, moving_mean, moving_variance: one per output channel
            scaled = [depth(d) for d in shape]
        total += int(np.prod(scaled))
    return total


def test_base_parameter_counts(base_net):
    # Model variables: weights, biases, beta and the moving statistics.
    assert base_net['parameters'] == reference_base_parameters() == 10173112
    with tf.Graph().as_default():
        build(base=True, depth_multiplier=0.5)
        assert parameter_count() == reference_base_parameters(0.5)


def test_update_ops_in_training_and_none_in_eval(base_net, full_net_training):
    # 68 batch-normalized convolutions, two moving averages each.
    assert base_net['update_ops'] == 136
    assert full_net_training['update_ops'] == 136
    with tf.Graph().as_default():
        build(num_classes=1001, is_training=False)
        assert tf1.get_collection(UPDATE_OPS) == []
        # as slim: the moving statistics are not "moving-average variables"
        assert tf1.get_collection(tf1.GraphKeys.MOVING_AVERAGE_VARIABLES) == []


def test_training_and_eval_mode_from_a_bool_tensor():
    """Batch statistics and moving updates in training, moving stats in eval."""
    images = np.random.RandomState(0).rand(2, 64, 64, 3).astype(np.float32)
    with tf.Graph().as_default():
        tf1.set_random_seed(1)
        inputs = tf1.placeholder(tf.float32, images.shape)
        training = tf1.placeholder(tf.bool, [])
        with slim.arg_scope(iv2.inception_v2_arg_scope()):
            logits, _ = iv2.inception_v2(inputs, num_classes=5,
                                         is_training=training,
                                         depth_multiplier=0.25)
        update_ops = tf1.get_collection(UPDATE_OPS)
        moving_mean = tf1.global_variables(
            'InceptionV2/Conv2d_2b_1x1/BatchNorm/moving_mean')[0]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            feed = {inputs: images, training: False}
            eval_1, eval_2 = (sess.run(logits, feed) for _ in range(2))
            sess.run(update_ops, {inputs: images, training: True})
            train = sess.run(logits, {inputs: images, training: True})
            updated = sess.run(moving_mean)
    # Eval mode is deterministic (no dropout, fixed statistics) ...
    np.testing.assert_array_equal(eval_1, eval_2)
    # ... and differs from training mode, which normalizes by the batch.
    assert np.abs(train - eval_1).max() > 1e-3
    # The update ops move the moving mean away from its initial zeros.
    assert np.abs(updated).max() > 1e-4


def test_group_norm_switch_has_no_moving_statistics():
    with tf.Graph().as_default():
        build(num_classes=1001, arg_scope={'normalizer': 'group'})
        names = [name for name, _ in variables()]
        assert tf1.get_collection(UPDATE_OPS) == []
        assert tf1.get_collection(tf1.GraphKeys.MOVING_AVERAGE_VARIABLES) == []
        assert not any('moving' in name or 'BatchNorm' in name
                       for name in names)
        prefix = 'InceptionV2/Mixed_3b/Branch_3/Conv2d_0b_1x1/GroupNorm/'
        assert prefix + 'beta' in names and prefix + 'gamma' in names
        # 68 normalized convs with beta and gamma, no conv biases.
        assert sum(name.endswith('GroupNorm/gamma') for name in names) == 68
        assert not any(name.endswith('_1x1/biases') and 'Logits' not in name
                       for name in names)


def test_training_steps_decrease_the_loss_on_a_repeated_batch():
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    labels = np.array([3, 7])
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        inputs = tf1.placeholder(tf.float32, images.shape)
        with slim.arg_scope(iv2.inception_v2_arg_scope()):
            logits, _ = iv2.inception_v2(inputs, num_classes=10,
                                         dropout_keep_prob=1.0)
        loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        with tf.control_dependencies(tf1.get_collection(UPDATE_OPS)):
            train_op = tf1.train.MomentumOptimizer(0.01, 0.9).minimize(
                loss + tf1.losses.get_regularization_loss())
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            losses = [sess.run([train_op, loss], {inputs: images})[1]
                      for _ in range(3)]
            losses.append(sess.run(loss, {inputs: images}))
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


def test_nchw_builds_with_per_channel_batch_norm():
    expected = dict(read_reference(VARIABLES_TSV))
    with tf.Graph().as_default():
        _, end_points = build(
            (2, 3, 224, 224), num_classes=1001, data_format='NCHW',
            use_separable_conv=False, arg_scope={'data_format': 'NCHW'})
        got = dict(variables())
        batch_norm = [name for name in got if '/BatchNorm/' in name]
        assert len(batch_norm) == 3 * 69  # 68 as slim's, plus Conv2d_1a_7x7
        for name in batch_norm:
            if 'Conv2d_1a_7x7' not in name:
                assert got[name] == expected[name], name
        assert got['InceptionV2/Conv2d_1a_7x7/BatchNorm/beta'] == [64]
        assert end_points['Mixed_4e'].shape.as_list() == [2, 576, 14, 14]
        assert end_points['Logits'].shape.as_list() == [2, 1001]


def test_arg_scope_with_another_data_format_is_refused():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match="data_format='NCHW'"):
            build((2, 3, 224, 224), data_format='NCHW',
                  use_separable_conv=False)


@pytest.mark.parametrize('kwargs, message', [
    ({'depth_multiplier': 0.0}, r'(?=.*depth_multiplier)(?=.*0\.0)'),
    ({'depth_multiplier': -1}, r'(?=.*depth_multiplier)(?=.*-1)'),
    ({'final_endpoint': 'Mixed_6a'}, "(?=.*final_endpoint)(?=.*'Mixed_6a')(?=.*Mixed_5c)"),
    ({'final_endpoint': 'Conv2d_2b_1x1', 'include_root_block': False},
     "(?=.*include_root_block=False)(?=.*'Conv2d_2b_1x1')"),
    ({'data_format': 'NCHW', 'shape': (2, 3, 224, 224)},
     'use_separable_conv=True'),
    ({'data_format': 'CHWN'}, "(?=.*data_format)(?=.*'CHWN')(?=.*NHWC)(?=.*NCHW)"),
    ({'shape': (224, 224, 3)}, r'(?=.*inputs)(?=.*rank 3)(?=.*\(224, 224, 3\))'),
])
def test_errors_name_the_argument_and_value(kwargs, message):
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=message):
            build(base=True, **kwargs)
        assert tf1.global_variables() == []


def test_classifier_refuses_bad_depth_multiplier_too():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='depth_multiplier'):
            build(depth_multiplier=0)


def test_final_endpoint_stops_the_network():
    with tf.Graph().as_default():
        net, end_points = build(base=True, final_endpoint='Mixed_4a')
        assert list(end_points) == list(iv2.END_POINTS[:8])
        assert net.shape.as_list() == [2, 14, 14, 576]
        assert not any('Mixed_4b' in name for name, _ in variables())


def test_without_root_block_inputs_feed_mixed_3b():
    with tf.Graph().as_default():
        net, end_points = build((2, 28, 28, 192), base=True,
                                include_root_block=False)
        assert list(end_points) == list(iv2.MIXED_END_POINTS)
        assert variables()[0][0].startswith('InceptionV2/Mixed_3b/')
        assert net.shape.as_list() == [2, 7, 7, 1024]


def test_small_inputs_and_heads():
    with tf.Graph().as_default():
        # 96x96 gives a 3x3 final map: the 7x7 average pool shrinks to it.
        # num_classes=0: the pooled features, no logits layer.
        features, end_points = build((2, 96, 96, 3), num_classes=0,
                                     depth_multiplier=0.25)
        assert end_points['AvgPool_1a'] is features
        assert 'AvgPool_1a_3x3' in features.name
        assert features.shape.as_list() == [2, 1, 1, 256]
        assert 'Logits' not in end_points
        assert not tf1.global_variables('InceptionV2/Logits')
        # global_pool pools any size to 1x1; no squeeze keeps 4-d logits.
        logits, end_points = build((2, 300, 300, 3), num_classes=10,
                                   depth_multiplier=0.25, global_pool=True,
                                   spatial_squeeze=False, scope='Global')
        assert end_points['global_pool'].shape.as_list() == [2, 1, 1, 256]
        assert logits.shape.as_list() == [2, 1, 1, 10]


def test_reduced_kernel_size_for_small_input():
    reduce = iv2._reduced_kernel_size_for_small_input
    with tf.Graph().as_default():
        unknown = tf1.placeholder(tf.float32, [None, None, None, 8])
        assert reduce(unknown, [7, 7]) == [7, 7]
        small = tf1.placeholder(tf.float32, [1, 8, 3, 5])
        assert reduce(small, [7, 7]) == [7, 3]
        assert reduce(small, [7, 7], data_format='NCHW') == [3, 5]
    assert iv2.inception_v2.default_image_size == 224
