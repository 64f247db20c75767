"""Inception V2 (Ioffe & Szegedy 2015), checkpoint-compatible with slim's.

The variables, their creation order and shapes are those of research/slim's
`nets/inception_v2.py`, i.e. of the public checkpoint
`inception_v2_2016_08_28` (277 variables with 1001 classes), so a plain
`tf.compat.v1.train.Saver` restores it. Batch norm comes from
`slimnorm.batch_norm` through `inception_v2_arg_scope`, whose `normalizer`
argument switches every conv layer to group, layer or instance norm.

As in the paper, the 5x5 convolutions of GoogLeNet are factorized into two
3x3 convolutions (Branch_2 of every block). With `use_separable_conv` (the
default, and slim's checkpoint) the first layer is a separable 7x7
convolution with depthwise multiplier 8, without normalizer and with biases
(the arg scope sets a normalizer for `slim.conv2d` only).

Usage:
  with slim.arg_scope(inception_v2_arg_scope()):
    logits, end_points = inception_v2(images, num_classes=1001,
                                      is_training=False)
"""

import tensorflow as tf
import tf_slim as slim
from tf_slim.ops.arg_scope import arg_scope_func_key

import slimnorm
from nets import inception_utils
from slimnorm import checks

tf1 = tf.compat.v1

# The end points of the root block (see `include_root_block`), in order.
ROOT_END_POINTS = ('Conv2d_1a_7x7', 'MaxPool_2a_3x3', 'Conv2d_2b_1x1',
                   'Conv2d_2c_3x3', 'MaxPool_3a_3x3')


def trunc_normal(stddev):
    return tf1.truncated_normal_initializer(0.0, stddev)


def _check_arguments(inputs, final_endpoint, depth_multiplier,
                     use_separable_conv, data_format, include_root_block):
    """All argument checks of the network, before any variable exists."""
    checks.positive(depth_multiplier, 'depth_multiplier')
    checks.data_format(data_format)
    if data_format == 'NCHW' and use_separable_conv:
        raise ValueError(
            "data_format='NCHW' with use_separable_conv=True: the separable "
            "first layer only supports NHWC; accepted: data_format='NHWC', "
            "or use_separable_conv=False with NCHW")
    checks.one_of(final_endpoint,
                  END_POINTS if include_root_block else MIXED_END_POINTS,
                  'final_endpoint' if include_root_block
                  else 'final_endpoint (with include_root_block=False)')
    checks.rank(inputs, (4,), 'inputs', 'the network takes %s images; '
                % ', '.join(data_format))
    _check_normalizer_data_format(data_format)


def _check_normalizer_data_format(data_format):
    """Refuses an arg scope whose normalizer reads another channel axis."""
    conv_scope = slim.current_arg_scope().get(
        arg_scope_func_key(slim.conv2d), {})
    params = conv_scope.get('normalizer_params') or {}
    if params.get('data_format', data_format) != data_format:
        raise ValueError(
            'data_format=%r but the arg scope normalizes with data_format=%r; '
            'pass data_format=%r to inception_v2_arg_scope as well'
            % (data_format, params['data_format'], data_format))


def _inception_block(net, scope, branch_depths, depth, concat_axis,
                     pool=slim.avg_pool2d):
    """The four-branch block under `scope`.

    branch_depths = (branch_0, branch_1, branch_2, branch_3), channel counts
    before `depth()`:
    Branch_0: 1x1 conv to branch_0 channels.
    Branch_1: 1x1 conv to branch_1[0], 3x3 conv to branch_1[1].
    Branch_2: 1x1 conv to branch_2[0], then two 3x3 convs to branch_2[1]
      (GoogLeNet's 5x5 convolution, factorized).
    Branch_3: 3x3 pool (average; max in Mixed_5c), 1x1 conv to branch_3.
    """
    branch_0, branch_1, branch_2, branch_3 = branch_depths
    pool_scope = ('MaxPool' if pool is slim.max_pool2d else 'AvgPool') + (
        '_0a_3x3')
    with tf1.variable_scope(scope):
        with tf1.variable_scope('Branch_0'):
            b0 = slim.conv2d(net, depth(branch_0), [1, 1],
                             scope='Conv2d_0a_1x1')
        with tf1.variable_scope('Branch_1'):
            b1 = slim.conv2d(net, depth(branch_1[0]), [1, 1],
                             weights_initializer=trunc_normal(0.09),
                             scope='Conv2d_0a_1x1')
            b1 = slim.conv2d(b1, depth(branch_1[1]), [3, 3],
                             scope='Conv2d_0b_3x3')
        with tf1.variable_scope('Branch_2'):
            b2 = slim.conv2d(net, depth(branch_2[0]), [1, 1],
                             weights_initializer=trunc_normal(0.09),
                             scope='Conv2d_0a_1x1')
            b2 = slim.conv2d(b2, depth(branch_2[1]), [3, 3],
                             scope='Conv2d_0b_3x3')
            b2 = slim.conv2d(b2, depth(branch_2[1]), [3, 3],
                             scope='Conv2d_0c_3x3')
        with tf1.variable_scope('Branch_3'):
            b3 = pool(net, [3, 3], scope=pool_scope)
            b3 = slim.conv2d(b3, depth(branch_3), [1, 1],
                             weights_initializer=trunc_normal(0.1),
                             scope='Conv2d_0b_1x1')
        return tf.concat(axis=concat_axis, values=[b0, b1, b2, b3])


def _reduction_block(net, scope, branch_depths, depth, concat_axis):
    """The grid-size reduction block (stride 2) under `scope`.

    branch_depths = (branch_0, branch_1), channel counts before `depth()`:
    Branch_0: 1x1 conv to branch_0[0], 3x3 conv with stride 2 to branch_0[1].
    Branch_1: 1x1 conv to branch_1[0], 3x3 conv and 3x3 conv with stride 2,
      both to branch_1[1].
    Branch_2: 3x3 max-pool with stride 2 (keeps the input's channels).
    """
    branch_0, branch_1 = branch_depths
    with tf1.variable_scope(scope):
        with tf1.variable_scope('Branch_0'):
            b0 = slim.conv2d(net, depth(branch_0[0]), [1, 1],
                             weights_initializer=trunc_normal(0.09),
                             scope='Conv2d_0a_1x1')
            b0 = slim.conv2d(b0, depth(branch_0[1]), [3, 3], stride=2,
                             scope='Conv2d_1a_3x3')
        with tf1.variable_scope('Branch_1'):
            b1 = slim.conv2d(net, depth(branch_1[0]), [1, 1],
                             weights_initializer=trunc_normal(0.09),
                             scope='Conv2d_0a_1x1')
            b1 = slim.conv2d(b1, depth(branch_1[1]), [3, 3],
                             scope='Conv2d_0b_3x3')
            b1 = slim.conv2d(b1, depth(branch_1[1]), [3, 3], stride=2,
                             scope='Conv2d_1a_3x3')
        with tf1.variable_scope('Branch_2'):
            b2 = slim.max_pool2d(net, [3, 3], stride=2,
                                 scope='MaxPool_1a_3x3')
        return tf.concat(axis=concat_axis, values=[b0, b1, b2])


def _inception_block_max_pool(net, scope, branch_depths, depth, concat_axis):
    return _inception_block(net, scope, branch_depths, depth, concat_axis,
                            pool=slim.max_pool2d)


# The blocks after the root, in order, as the paper's Table 1; channel counts
# before depth(). Four-branch blocks: (1x1, (1x1, 3x3), (1x1, double 3x3),
# pool projection); reduction blocks: ((1x1, 3x3/2), (1x1, double 3x3/2)).
_MIXED_BLOCKS = (
    ('Mixed_3b', _inception_block, (64, (64, 64), (64, 96), 32)),  # 28x28x256
    ('Mixed_3c', _inception_block, (64, (64, 96), (64, 96), 64)),  # 28x28x320
    ('Mixed_4a', _reduction_block, ((128, 160), (64, 96))),        # 14x14x576
    ('Mixed_4b', _inception_block, (224, (64, 96), (96, 128), 128)),
    ('Mixed_4c', _inception_block, (192, (96, 128), (96, 128), 128)),
    ('Mixed_4d', _inception_block, (160, (128, 160), (128, 160), 96)),
    ('Mixed_4e', _inception_block, (96, (128, 192), (160, 192), 96)),
    ('Mixed_5a', _reduction_block, ((128, 192), (192, 256))),      # 7x7x1024
    ('Mixed_5b', _inception_block, (352, (192, 320), (160, 224), 128)),
    ('Mixed_5c', _inception_block_max_pool,
     (352, (192, 320), (192, 224), 128)),
)
MIXED_END_POINTS = tuple(name for name, _, _ in _MIXED_BLOCKS)
# All end points of `inception_v2_base`, in order.
END_POINTS = ROOT_END_POINTS + MIXED_END_POINTS


def inception_v2_base(inputs,
                      final_endpoint='Mixed_5c',
                      min_depth=16,
                      depth_multiplier=1.0,
                      use_separable_conv=True,
                      data_format='NHWC',
                      include_root_block=True,
                      scope=None):
    """Inception V2 from the inputs up to `final_endpoint`.

    Args:
      inputs: [batch, height, width, channels] (NHWC) or
        [batch, channels, height, width] (NCHW) tensor; sizes in the comments
        are for 224x224, any size above 32x32 works.
      final_endpoint: the last end point built, one of END_POINTS
        (MIXED_END_POINTS without the root block).
      min_depth: the smallest channel count of any conv when
        depth_multiplier < 1.
      depth_multiplier: multiplies every conv's channel count, > 0.
      use_separable_conv: first layer separable (slim's checkpoint) or a
        plain 7x7 convolution with normalizer.
      data_format: 'NHWC' or 'NCHW' (NCHW needs use_separable_conv=False).
      include_root_block: build the layers before Mixed_3b; without them,
        `inputs` feed Mixed_3b directly.
      scope: variable scope, default 'InceptionV2'.

    Returns:
      (output of final_endpoint, dict of end points).

    Raises:
      ValueError: depth_multiplier <= 0, unknown final_endpoint or
        data_format, NCHW with the separable first layer, inputs not rank 4,
        or an arg scope normalizing another data_format.
    """
    _check_arguments(inputs, final_endpoint, depth_multiplier,
                     use_separable_conv, data_format, include_root_block)

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    end_points = {}

    def reached(end_point, net):
        end_points[end_point] = net
        return end_point == final_endpoint

    concat_axis = 3 if data_format == 'NHWC' else 1
    with tf1.variable_scope(scope, 'InceptionV2', [inputs]):
        with slim.arg_scope([slim.conv2d, slim.max_pool2d, slim.avg_pool2d],
                            stride=1, padding='SAME',
                            data_format=data_format):
            net = inputs
            if include_root_block:
                # 224 x 224 x 3
                end_point = 'Conv2d_1a_7x7'
                if use_separable_conv:
                    # The depthwise multiplier (channels per input channel of
                    # the depthwise step) is at most depth(64) / 3, so that 3
                    # (RGB) times it stays <= the output channels: the
                    # separable conv is not over-parameterized.
                    net = slim.separable_conv2d(
                        net, depth(64), [7, 7],
                        depth_multiplier=min(int(depth(64) / 3), 8),
                        stride=2, padding='SAME',
                        weights_initializer=trunc_normal(1.0),
                        scope=end_point)
                else:
                    net = slim.conv2d(net, depth(64), [7, 7], stride=2,
                                      weights_initializer=trunc_normal(1.0),
                                      scope=end_point)
                if reached(end_point, net):
                    return net, end_points
                # 112 x 112 x 64
                end_point = 'MaxPool_2a_3x3'
                net = slim.max_pool2d(net, [3, 3], stride=2, scope=end_point)
                if reached(end_point, net):
                    return net, end_points
                # 56 x 56 x 64
                end_point = 'Conv2d_2b_1x1'
                net = slim.conv2d(net, depth(64), [1, 1],
                                  weights_initializer=trunc_normal(0.1),
                                  scope=end_point)
                if reached(end_point, net):
                    return net, end_points
                # 56 x 56 x 64
                end_point = 'Conv2d_2c_3x3'
                net = slim.conv2d(net, depth(192), [3, 3], scope=end_point)
                if reached(end_point, net):
                    return net, end_points
                # 56 x 56 x 192
                end_point = 'MaxPool_3a_3x3'
                net = slim.max_pool2d(net, [3, 3], stride=2, scope=end_point)
                if reached(end_point, net):
                    return net, end_points

            # 28 x 28 x 192
            for end_point, block, branch_depths in _MIXED_BLOCKS:
                net = block(net, end_point, branch_depths, depth, concat_axis)
                if reached(end_point, net):
                    break
            return net, end_points


def inception_v2(inputs,
                 num_classes=1000,
                 is_training=True,
                 dropout_keep_prob=0.8,
                 min_depth=16,
                 depth_multiplier=1.0,
                 prediction_fn=slim.softmax,
                 spatial_squeeze=True,
                 reuse=None,
                 scope='InceptionV2',
                 global_pool=False,
                 use_separable_conv=True,
                 data_format='NHWC',
                 include_root_block=True):
    """Inception V2 for classification; returns `(logits, end_points)`.

    Args:
      inputs: see `inception_v2_base`; 224x224 is the training size.
      num_classes: number of logits (1001 for slim's ImageNet checkpoint,
        class 0 = background); 0 or None returns the pooled features (before
        dropout) instead of logits.
      is_training: Python bool or bool tensor, for batch norm and dropout.
      dropout_keep_prob: keep probability of the dropout before the logits.
      min_depth, depth_multiplier, use_separable_conv, data_format,
        include_root_block: see `inception_v2_base`.
      prediction_fn: function of the logits giving end_points['Predictions'].
      spatial_squeeze: logits of shape [batch, classes] rather than
        [batch, 1, 1, classes].
      reuse: reuse the variables of `scope`.
      scope: variable scope.
      global_pool: average over the whole final feature map; otherwise a
        7x7 average pool (smaller for small inputs), which leaves larger
        outputs for inputs larger than 224x224.

    Raises:
      ValueError: see `inception_v2_base`.
    """
    spatial_axes = [1, 2] if data_format == 'NHWC' else [2, 3]
    with tf1.variable_scope(scope, 'InceptionV2', [inputs],
                            reuse=reuse) as scope:
        with slim.arg_scope([slimnorm.batch_norm, slim.dropout],
                            is_training=is_training):
            net, end_points = inception_v2_base(
                inputs, scope=scope, min_depth=min_depth,
                depth_multiplier=depth_multiplier,
                use_separable_conv=use_separable_conv,
                data_format=data_format,
                include_root_block=include_root_block)
            with tf1.variable_scope('Logits'):
                if global_pool:
                    net = tf.reduce_mean(net, spatial_axes, keepdims=True,
                                         name='global_pool')
                    end_points['global_pool'] = net
                else:
                    kernel_size = _reduced_kernel_size_for_small_input(
                        net, [7, 7], data_format)
                    net = slim.avg_pool2d(
                        net, kernel_size, padding='VALID',
                        data_format=data_format,
                        scope='AvgPool_1a_{}x{}'.format(*kernel_size))
                    end_points['AvgPool_1a'] = net
                if not num_classes:
                    return net, end_points
                # 1 x 1 x 1024
                net = slim.dropout(net, keep_prob=dropout_keep_prob,
                                   scope='Dropout_1b')
                end_points['PreLogits'] = net
                logits = slim.conv2d(net, num_classes, [1, 1],
                                     activation_fn=None, normalizer_fn=None,
                                     data_format=data_format,
                                     scope='Conv2d_1c_1x1')
                if spatial_squeeze:
                    logits = tf.squeeze(logits, spatial_axes,
                                        name='SpatialSqueeze')
            end_points['Logits'] = logits
            end_points['Predictions'] = prediction_fn(logits,
                                                      scope='Predictions')
    return logits, end_points


inception_v2.default_image_size = 224


def _reduced_kernel_size_for_small_input(input_tensor, kernel_size,
                                         data_format='NHWC'):
    """The pooling kernel, shrunk to the feature map when that is smaller.

    A 7x7 average pool reduces the 7x7 map of a 224x224 input to 1x1; for
    smaller inputs (e.g. 96x96 -> 3x3 map) the kernel becomes the map size,
    so the pool still covers the whole map instead of failing. An unknown
    height or width keeps `kernel_size` (the input is assumed large enough).
    """
    shape = input_tensor.shape.as_list()
    height, width = shape[1:3] if data_format == 'NHWC' else shape[2:4]
    if height is None or width is None:
        return list(kernel_size)
    return [min(height, kernel_size[0]), min(width, kernel_size[1])]


inception_v2_arg_scope = inception_utils.inception_arg_scope
