"""MobileNet v1 (Howard et al. 2017), as research/slim's nets/mobilenet_v1.py.

Usage, as research/slim:
  with slim.arg_scope(mobilenet_v1_arg_scope()):
    logits, end_points = mobilenet_v1(images, num_classes=1001)

Variable for variable the public checkpoint `mobilenet_v1_1.0_224`:
`MobilenetV1/Conv2d_0/weights`, `MobilenetV1/Conv2d_<i>_depthwise/depthwise_weights`,
`MobilenetV1/Conv2d_<i>_pointwise/weights`, each layer's
`BatchNorm/{beta,gamma,moving_mean,moving_variance}` (slim's arg scope
learns gamma: scale=True), and `MobilenetV1/Logits/Conv2d_1c_1x1/{weights,biases}`.
End points `Conv2d_0`, `Conv2d_1_depthwise`, `Conv2d_1_pointwise`, ...,
`Conv2d_13_pointwise`, `AvgPool_1a` (or `global_pool`), `Logits`, `Predictions`.

What it adds to slim's: `normalizer` / `normalizer_params` (group, layer,
instance norm or batch renorm for every layer, `nets.normalizers`) and
`data_format` ('NCHW' too; slim's was NHWC only).
"""

import collections

import tensorflow as tf
import tf_slim as slim

import slimnorm
from nets import normalizers
from slimnorm import checks

Conv = collections.namedtuple('Conv', ['kernel', 'stride', 'depth'])
DepthSepConv = collections.namedtuple('DepthSepConv', ['kernel', 'stride', 'depth'])

# research/slim's _CONV_DEFS: a 3x3 convolution, then 13 depthwise separable ones.
MOBILENETV1_CONV_DEFS = [
    Conv(kernel=[3, 3], stride=2, depth=32),
    DepthSepConv(kernel=[3, 3], stride=1, depth=64),
    DepthSepConv(kernel=[3, 3], stride=2, depth=128),
    DepthSepConv(kernel=[3, 3], stride=1, depth=128),
    DepthSepConv(kernel=[3, 3], stride=2, depth=256),
    DepthSepConv(kernel=[3, 3], stride=1, depth=256),
    DepthSepConv(kernel=[3, 3], stride=2, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=2, depth=1024),
    DepthSepConv(kernel=[3, 3], stride=1, depth=1024),
]


def _spatial(data_format):
    return (1, 2) if data_format == 'NHWC' else (2, 3)


def _fixed_padding(inputs, kernel_size, rate, data_format):
    """Pads the spatial axes as 'SAME' would for a stride-1 convolution."""
    effective = [k + (k - 1) * (rate - 1) for k in kernel_size]
    pads = [[(e - 1) // 2, (e - 1) - (e - 1) // 2] for e in effective]
    if data_format == 'NHWC':
        return tf.pad(inputs, [[0, 0], pads[0], pads[1], [0, 0]])
    return tf.pad(inputs, [[0, 0], [0, 0], pads[0], pads[1]])


def mobilenet_v1_base(inputs, final_endpoint='Conv2d_13_pointwise', min_depth=8,
                      depth_multiplier=1.0, conv_defs=None, output_stride=None,
                      use_explicit_padding=False, data_format='NHWC', scope=None):
    """The convolutional layers up to `final_endpoint`; returns (net, end_points).

    Raises:
      ValueError: depth_multiplier <= 0, output_stride not 8, 16 or 32, or an
        unknown final_endpoint.
    """
    checks.positive(depth_multiplier, 'depth_multiplier')
    checks.data_format(data_format)
    if output_stride is not None and output_stride not in (8, 16, 32):
        raise ValueError('output_stride must be None, 8, 16 or 32, got %r.' % (output_stride,))
    conv_defs = conv_defs or MOBILENETV1_CONV_DEFS
    names = []
    for i, conv_def in enumerate(conv_defs):
        names += (['Conv2d_%d' % i] if isinstance(conv_def, Conv) else
                  ['Conv2d_%d_depthwise' % i, 'Conv2d_%d_pointwise' % i])
    checks.one_of(final_endpoint, names, 'final_endpoint')

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    end_points = {}
    padding = 'VALID' if use_explicit_padding else 'SAME'
    with tf.compat.v1.variable_scope(scope, 'MobilenetV1', [inputs]):
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding=padding,
                            data_format=data_format):
            # The stride so far; past output_stride, strides become atrous rates.
            current_stride, rate, net = 1, 1, inputs
            for i, conv_def in enumerate(conv_defs):
                if output_stride is not None and current_stride == output_stride:
                    layer_stride, layer_rate = 1, rate
                    rate *= conv_def.stride
                else:
                    layer_stride, layer_rate = conv_def.stride, 1
                    current_stride *= conv_def.stride
                if use_explicit_padding:
                    net = _fixed_padding(net, conv_def.kernel, layer_rate, data_format)
                if isinstance(conv_def, Conv):
                    end_point = 'Conv2d_%d' % i
                    net = slim.conv2d(net, depth(conv_def.depth), conv_def.kernel,
                                      stride=conv_def.stride, scope=end_point)
                    end_points[end_point] = net
                    if end_point == final_endpoint:
                        return net, end_points
                    continue
                end_point = 'Conv2d_%d_depthwise' % i
                net = slim.separable_conv2d(net, None, conv_def.kernel, depth_multiplier=1,
                                            stride=layer_stride, rate=layer_rate,
                                            scope=end_point)
                end_points[end_point] = net
                if end_point == final_endpoint:
                    return net, end_points
                end_point = 'Conv2d_%d_pointwise' % i
                net = slim.conv2d(net, depth(conv_def.depth), [1, 1], stride=1,
                                  scope=end_point)
                end_points[end_point] = net
                if end_point == final_endpoint:
                    return net, end_points
    raise AssertionError('unreachable: final_endpoint was checked')


def _reduced_kernel_size_for_small_input(net, kernel_size, data_format):
    """The pooling kernel, shrunk to the feature map when that is smaller."""
    height, width = (net.shape[axis] for axis in _spatial(data_format))
    if height is None or width is None:
        return kernel_size
    return [min(height, kernel_size[0]), min(width, kernel_size[1])]


def mobilenet_v1(inputs, num_classes=1000, dropout_keep_prob=0.999, is_training=True,
                 min_depth=8, depth_multiplier=1.0, conv_defs=None,
                 prediction_fn=slim.softmax, spatial_squeeze=True, reuse=None,
                 scope='MobilenetV1', global_pool=False, data_format='NHWC'):
    """MobileNet v1 classifier; returns (logits, end_points).

    Args as research/slim's; `data_format` 'NHWC' or 'NCHW' (inputs in that
    layout). num_classes 0 or None returns the pooled features.
    """
    checks.rank(inputs, (4,), 'inputs', 'MobileNet takes [%s] images; ' % ', '.join(data_format))
    checks.optional_integer(num_classes, 'num_classes', minimum=0)
    with tf.compat.v1.variable_scope(scope, 'MobilenetV1', [inputs], reuse=reuse) as scope:
        with slim.arg_scope([slimnorm.batch_norm, slim.dropout], is_training=is_training):
            net, end_points = mobilenet_v1_base(
                inputs, scope=scope, min_depth=min_depth, depth_multiplier=depth_multiplier,
                conv_defs=conv_defs, data_format=data_format)
            with tf.compat.v1.variable_scope('Logits'):
                if global_pool:
                    net = tf.reduce_mean(net, _spatial(data_format), keepdims=True,
                                         name='global_pool')
                    end_points['global_pool'] = net
                else:
                    kernel = _reduced_kernel_size_for_small_input(net, [7, 7], data_format)
                    net = slim.avg_pool2d(net, kernel, padding='VALID', scope='AvgPool_1a',
                                          data_format=data_format)
                    end_points['AvgPool_1a'] = net
                if not num_classes:
                    return net, end_points
                net = slim.dropout(net, keep_prob=dropout_keep_prob, scope='Dropout_1b')
                logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                     normalizer_fn=None, data_format=data_format,
                                     scope='Conv2d_1c_1x1')
                if spatial_squeeze:
                    logits = tf.squeeze(logits, _spatial(data_format), name='SpatialSqueeze')
            end_points['Logits'] = logits
            if prediction_fn:
                end_points['Predictions'] = prediction_fn(logits, scope='Predictions')
    return logits, end_points


mobilenet_v1.default_image_size = 224


def mobilenet_v1_arg_scope(is_training=True, weight_decay=0.00004, stddev=0.09,
                           regularize_depthwise=False, batch_norm_decay=0.9997,
                           batch_norm_epsilon=0.001,
                           batch_norm_updates_collections=tf.compat.v1.GraphKeys.UPDATE_OPS,
                           normalizer='batch', normalizer_params=None, data_format='NHWC'):
    """research/slim's MobileNet v1 arg scope, with the normalizer switch.

    Batch norm: center and scale (beta and gamma), decay 0.9997, epsilon
    0.001; ReLU6 after every layer; truncated normal weights (stddev 0.09);
    L2 weight decay on the regular convolutions, and on the depthwise ones
    only with regularize_depthwise. `is_training` (None: not set here) is
    batch norm's default; `mobilenet_v1(is_training=...)` overrides it.
    """
    batch_norm_params = {
        'center': True,
        'scale': True,
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'updates_collections': batch_norm_updates_collections,
    }
    normalizer_fn, normalizer_params = normalizers.normalizer_fn_and_params(
        normalizer, data_format, batch_norm_params, normalizer_params)
    regularizer = slim.l2_regularizer(weight_decay)
    depthwise_regularizer = regularizer if regularize_depthwise else None
    training = {} if is_training is None else {'is_training': is_training}
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.compat.v1.truncated_normal_initializer(
                            stddev=stddev),
                        activation_fn=tf.nn.relu6, normalizer_fn=normalizer_fn,
                        normalizer_params=normalizer_params), \
            slim.arg_scope([slimnorm.batch_norm], **training), \
            slim.arg_scope([slim.conv2d], weights_regularizer=regularizer), \
            slim.arg_scope([slim.separable_conv2d],
                           weights_regularizer=depthwise_regularizer) as scope:
        return scope
