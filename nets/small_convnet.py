"""The seeds' small CNN for 8x8 to 32x32 images, with a normalizer switch.

Five 3x3 convolutions, each followed by the normalizer and a ReLU, a 2x2
max-pool with stride 2 after each of the first four, a global average pool
and a linear layer to the logits. Pools use 'SAME' padding, so sizes go
28 -> 14 -> 7 -> 4 -> 2, 32 -> 16 -> 8 -> 4 -> 2, and 8 -> 4 -> 2 -> 1 -> 1:
the 8x8 digits images work unchanged.

`fc_units` adds a normalized fully-connected layer ('fc6') before the logits.
It is where batch size matters for batch norm: a conv layer's statistics
come from batch * H * W values, a fully-connected layer's from batch values
only.

Usage, as research/slim:
  with slim.arg_scope(small_convnet_arg_scope(weight_decay=1e-4)):
    logits, end_points = small_convnet(images, normalizer='group')
"""

import tensorflow as tf
import tf_slim as slim

import slimnorm
from nets import normalizers
from slimnorm import checks

DEFAULT_DEPTHS = (32, 64, 64, 128, 128)

# Batch norm defaults of this network, overridden by `normalizer_params`.
# decay 0.99 rather than slim's 0.999: runs here are a few thousand steps,
# and the moving statistics must have caught up with the weights when the
# network is evaluated. scale=True: gamma is learned, as in the seeds' recipe.
BATCH_NORM_DEFAULTS = {'decay': 0.99, 'epsilon': 0.001, 'scale': True}


def small_convnet_arg_scope(weight_decay=0.0, activation_fn=tf.nn.relu):
    """Initializer, activation and L2 weight decay of the conv and fc layers.

    The normalizer is an argument of `small_convnet` itself, because it must
    follow the network's data_format.
    """
    checks.at_least(weight_decay, 0, 'weight_decay')
    regularizer = slim.l2_regularizer(weight_decay) if weight_decay else None
    with slim.arg_scope(
            [slim.conv2d, slim.fully_connected],
            weights_initializer=slim.variance_scaling_initializer(),
            weights_regularizer=regularizer,
            activation_fn=activation_fn) as scope:
        return scope


def _check_arguments(images, num_classes, normalizer, depths, fc_units,
                     data_format):
    """All argument checks, before any variable exists."""
    checks.data_format(data_format)
    normalizer = normalizers.canonical_normalizer(normalizer)
    checks.rank(images, (4,), 'images', 'the network takes [%s] images; '
                % ', '.join(data_format))
    checks.int_sequence(depths, 'depths', minimum=1)
    checks.optional_integer(fc_units, 'fc_units', minimum=1)
    if fc_units and normalizer == 'instance':
        raise ValueError(
            "fc_units=%r with normalizer='instance': instance norm needs "
            "spatial axes and cannot normalize a fully-connected layer; "
            "accepted: fc_units=None or another normalizer" % (fc_units,))
    checks.optional_integer(num_classes, 'num_classes', minimum=0)


def small_convnet(images,
                  num_classes=10,
                  is_training=True,
                  normalizer='batch',
                  normalizer_params=None,
                  depths=DEFAULT_DEPTHS,
                  fc_units=None,
                  data_format='NHWC',
                  prediction_fn=slim.softmax,
                  reuse=None,
                  scope='SmallConvNet'):
    """Builds the small CNN; returns `(logits, end_points)`.

    Args:
      images: [batch, height, width, channels] (NHWC) or
        [batch, channels, height, width] (NCHW) float tensor; any size >= 1.
      num_classes: number of logits; 0 or None returns the pooled (or fc6)
        features instead of logits.
      is_training: Python bool or bool tensor, for batch norm.
      normalizer: 'batch' (default), 'batch_renorm', 'group', 'layer',
        'instance' or None; applied after every conv and after fc6.
      normalizer_params: keyword arguments of the normalizer, overriding
        BATCH_NORM_DEFAULTS for batch norm.
      depths: output channels of the five convolutions (any length works;
        a pool follows every conv but the last).
      fc_units: None, or the width of a normalized fully-connected layer
        before the logits.
      data_format: 'NHWC' or 'NCHW' (CPU max-pool only runs NHWC).
      prediction_fn: function of the logits giving end_points['Predictions'].
      reuse: reuse the variables of `scope`.
      scope: variable scope.

    Raises:
      ValueError (TypeError for a value of the wrong type): for any argument
        outside what is documented above, from `slimnorm.checks`.
    """
    _check_arguments(images, num_classes, normalizer, depths, fc_units,
                     data_format)
    normalizer_fn, normalizer_params = normalizers.normalizer_fn_and_params(
        normalizer, data_format, BATCH_NORM_DEFAULTS, normalizer_params)
    spatial_axes = [1, 2] if data_format == 'NHWC' else [2, 3]
    end_points = {}
    with tf.compat.v1.variable_scope(scope, 'SmallConvNet', [images],
                                     reuse=reuse):
        with slim.arg_scope([slimnorm.batch_norm], is_training=is_training), \
                slim.arg_scope([slim.conv2d, slim.fully_connected],
                               normalizer_fn=normalizer_fn,
                               normalizer_params=normalizer_params), \
                slim.arg_scope([slim.conv2d, slim.max_pool2d],
                               padding='SAME', data_format=data_format):
            net = images
            for index, depth in enumerate(depths, start=1):
                end_point = 'conv%d' % index
                net = slim.conv2d(net, depth, [3, 3], scope=end_point)
                end_points[end_point] = net
                if index < len(depths):
                    end_point = 'pool%d' % index
                    net = slim.max_pool2d(net, [2, 2], stride=2,
                                          scope=end_point)
                    end_points[end_point] = net

            end_point = 'global_pool'
            net = tf.reduce_mean(net, spatial_axes, name=end_point)
            end_points[end_point] = net

            if fc_units:
                end_point = 'fc6'
                net = slim.fully_connected(net, fc_units, scope=end_point)
                end_points[end_point] = net

            if not num_classes:
                return net, end_points
            logits = slim.fully_connected(net, num_classes, activation_fn=None,
                                          normalizer_fn=None, scope='logits')
            end_points['Logits'] = logits
            end_points['Predictions'] = prediction_fn(logits,
                                                      scope='Predictions')
    return logits, end_points


small_convnet.default_image_size = 28
