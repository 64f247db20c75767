"""The network cases of the benchmark (`slimnorm bench norms`): Inception V2 steps per normalizer.

  fused_kernel  the same network with a normalizer_fn that calls
                tf.compat.v1.nn.fused_batch_norm directly and assigns the
                moving averages (what slim's fused batch norm did): the
                speed slim had, and the baseline of the ratios;
  batch_norm    slimnorm.batch_norm, the networks' default;
  group_norm    normalizer='group' (tf-slim's group norm if slimnorm has
                none yet), on the fused kernel where it loads;
  group_norm_tf_ops  the same on the TF-ops math (slimnorm.kernels.tf_ops_only);
  none          no normalizer at all, the floor.

A training step is forward, softmax cross-entropy + weight decay, backward,
a plain SGD update and the UPDATE_OPS; an inference step is the forward pass
with is_training=False. Images and labels are variables in the graph.
"""

import tensorflow as tf
import tf_slim as slim

import slimnorm
from nets import inception_v2
from slimnorm import kernels

BASELINE = "fused_kernel"
KINDS = (BASELINE, "batch_norm", "group_norm", "group_norm_tf_ops", "none")
MODES = ("train", "inference")
NUM_CLASSES = 1001


def fused_kernel_batch_norm(inputs, is_training=True, decay=0.9997, epsilon=0.001,
                            scale=False, data_format="NHWC",
                            updates_collections=tf.compat.v1.GraphKeys.UPDATE_OPS,
                            scope=None, **unused):
    """slim's fused batch norm, reduced to the kernel and two assign_sub ops."""
    del unused
    axis = -1 if data_format == "NHWC" else 1
    channels = inputs.shape[axis]

    def variable(name, value, trainable=True):
        return tf.compat.v1.get_variable(
            name, [channels], initializer=tf.compat.v1.constant_initializer(value),
            trainable=trainable)

    with tf.compat.v1.variable_scope(scope, "BatchNorm", [inputs]):
        beta = variable("beta", 0.0)
        gamma = variable("gamma", 1.0) if scale else tf.ones([channels])
        moving_mean = variable("moving_mean", 0.0, trainable=False)
        moving_variance = variable("moving_variance", 1.0, trainable=False)
        if not is_training:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=moving_mean, variance=moving_variance,
                epsilon=epsilon, data_format=data_format, is_training=False)
            return y
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=epsilon, data_format=data_format, is_training=True)
        for average, value in ((moving_mean, mean), (moving_variance, variance)):
            update = average.assign_sub((average - value) * (1.0 - decay), read_value=False)
            tf.compat.v1.add_to_collection(updates_collections, update)
        return y


def _tf_slim_group_norm(inputs, groups=32, data_format="NHWC", **kwargs):
    return slim.group_norm(inputs, groups=min(groups, inputs.shape[-1]), **kwargs)


def group_norm_source():
    return "slimnorm" if hasattr(slimnorm, "group_norm") else "tf_slim"


def _logits(kind, images, is_training, depth_multiplier):
    if kind == "group_norm_tf_ops":
        with kernels.tf_ops_only():
            return _logits("group_norm", images, is_training, depth_multiplier)
    normalizer = {"none": None, "group_norm": "group"}.get(kind, "batch")
    override = {}
    if kind == BASELINE:
        override = dict(normalizer_fn=fused_kernel_batch_norm,
                        normalizer_params={"is_training": is_training, "decay": 0.9997,
                                           "epsilon": 0.001, "data_format": "NHWC"})
    elif kind == "group_norm" and group_norm_source() == "tf_slim":
        override = dict(normalizer_fn=_tf_slim_group_norm, normalizer_params={})
    with slim.arg_scope(inception_v2.inception_v2_arg_scope(normalizer=normalizer)):
        with slim.arg_scope([slim.conv2d], **override):
            logits, _ = inception_v2.inception_v2(
                images, NUM_CLASSES, is_training=is_training,
                depth_multiplier=depth_multiplier)
    return logits


def build(kind, mode, batch, size, depth_multiplier=1.0, seed=0):
    """One network step's fetches in the current (fresh) graph.

    The inference step fetches the sum of the logits (a `tf.group` of
    stateless ops would be pruned by grappler).
    """
    images = tf.compat.v1.get_variable(
        "images", [batch, size, size, 3], trainable=False,
        initializer=tf.compat.v1.random_uniform_initializer(-1.0, 1.0, seed=seed))
    labels = tf.constant([i % NUM_CLASSES for i in range(batch)], tf.int32)
    is_training = mode == "train"
    logits = _logits(kind, images, is_training, depth_multiplier)
    if not is_training:
        return [tf.reduce_sum(logits)]
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    total = loss + tf.compat.v1.losses.get_regularization_loss()
    step = tf.compat.v1.train.GradientDescentOptimizer(0.01).minimize(total)
    return [tf.group(step, *tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))]
