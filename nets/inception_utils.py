"""The arg scope shared by the Inception networks, with a normalizer switch.

Usage, as research/slim:
  with slim.arg_scope(inception_arg_scope()):
    logits, end_points = inception_v2.inception_v2(images, 1001)

Same arguments and defaults as slim's `inception_arg_scope`, so its variables
(and the public checkpoints) are unchanged; what it adds:
- `normalizer` / `normalizer_params`: one switch from batch norm to group,
  layer or instance norm or batch renorm for every conv layer
  (`use_batch_norm=False` remains slim's spelling of `normalizer=None`);
- `data_format`: handed to the normalizer, which must match the network's
  (slim's scope did not, so its NCHW graphs normalized over the width axis).
"""

import tensorflow as tf
import tf_slim as slim

from nets import normalizers


def inception_arg_scope(
        weight_decay=0.00004,
        use_batch_norm=True,
        batch_norm_decay=0.9997,
        batch_norm_epsilon=0.001,
        activation_fn=tf.nn.relu,
        batch_norm_updates_collections=tf.compat.v1.GraphKeys.UPDATE_OPS,
        batch_norm_scale=False,
        normalizer='batch',
        normalizer_params=None,
        data_format='NHWC'):
    """Returns the arg scope of the Inception models.

    Args:
      weight_decay: L2 weight decay of the conv and fully-connected weights.
      use_batch_norm: False builds no normalizer at all (slim's switch); True
        uses `normalizer`.
      batch_norm_decay: decay of the moving averages of batch norm.
      batch_norm_epsilon: epsilon of batch norm.
      activation_fn: activation of the conv layers.
      batch_norm_updates_collections: collection of the moving-average update
        ops (None: update in place).
      batch_norm_scale: learn batch norm's gamma (slim's checkpoints do not
        have one).
      normalizer: 'batch' (default), 'batch_renorm', 'group', 'layer',
        'instance' or None. The four batch_norm_* arguments apply to 'batch'
        and 'batch_renorm' only.
      normalizer_params: keyword arguments of the normalizer; they override
        everything above, e.g. {'groups': 16} for 'group'.
      data_format: 'NHWC' or 'NCHW', the layout of the network's activations.

    Returns:
      An arg scope for `slim.arg_scope`.

    Raises:
      ValueError: unknown normalizer or data_format.
    """
    batch_norm_params = {
        'decay': batch_norm_decay,
        'epsilon': batch_norm_epsilon,
        'updates_collections': batch_norm_updates_collections,
        'scale': batch_norm_scale,
    }
    normalizer_fn, normalizer_params = normalizers.normalizer_fn_and_params(
        normalizer if use_batch_norm else None, data_format,
        batch_norm_params, normalizer_params)
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope(
                [slim.conv2d],
                weights_initializer=slim.variance_scaling_initializer(),
                activation_fn=activation_fn,
                normalizer_fn=normalizer_fn,
                normalizer_params=normalizer_params) as scope:
            return scope
