"""The op cases of the benchmark (`slimnorm bench norms`): one normalisation layer on one tensor.

Every case is built into a shared graph holding the input `x` and the
upstream gradient `dy` as variables (constants would be folded away by
grappler, fed arrays would time the copy), and returns one op to run:

  forward    the layer in training mode, output only (no moving averages);
  train      forward + backward (gradients w.r.t. x and the layer's
             parameters, with `dy` as the upstream gradient) + the
             UPDATE_OPS the layer added; TF's fused kernel runs alone (the
             baseline), and once more with the two moving-average updates
             slim's fused batch norm added (`tf_fused_updates`);
  inference  batch norm with fixed (moving) statistics.

Group, layer and instance norm run twice when the fused kernels load
(slimnorm.kernels): as the layers run by default (the kernel), and in rows
suffixed `_tf_ops` on the TF-ops math they fall back to.

What is fetched is one scalar: the sum of the first element of every output
(or gradient), plus the update ops. Not the tensors themselves (a copy to
numpy would be timed), and not `tf.group` of them: grappler prunes stateless
ops that a fetched NoOp only has control dependencies on, so nothing would
run.
"""

import contextlib

import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import kernels
from slimnorm.bench.networks import fused_kernel_batch_norm

MODES = ("forward", "train", "inference")
BASELINE = "tf_fused"
FLOOR = "floor"
TF_OPS_SUFFIX = "_tf_ops"
EPSILON = 0.001


def _variable(name, shape, value):
    return tf.compat.v1.get_variable(
        name, shape=shape, initializer=tf.compat.v1.constant_initializer(value))


def inputs(shape, seed=0):
    """The shared x ~ N(0.5, 1) and dy ~ N(0, 1) variables of one shape."""
    x = tf.compat.v1.get_variable(
        "x", shape=shape,
        initializer=tf.compat.v1.random_normal_initializer(0.5, 1.0, seed=seed))
    dy = tf.compat.v1.get_variable(
        "dy", shape=shape,
        initializer=tf.compat.v1.random_normal_initializer(0.0, 1.0, seed=seed + 1))
    return x, dy


def _floor(x, is_training):
    del is_training
    return x * 1.0001


def _tf_fused(x, is_training):
    """TF's kernel called directly, with its own parameters."""
    channels = x.shape[-1]
    gamma = _variable("gamma", [channels], 1.0)
    beta = _variable("beta", [channels], 0.0)
    if is_training:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=EPSILON,
                                                   is_training=True)
        return y
    mean = _variable("moving_mean", [channels], 0.0)
    variance = _variable("moving_variance", [channels], 1.0)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean=mean, variance=variance,
                                               epsilon=EPSILON, is_training=False)
    return y


def _tf_fused_updates(x, is_training):
    """The kernel plus slim's moving-average updates (one assign_sub each)."""
    return fused_kernel_batch_norm(x, is_training=is_training, decay=0.999,
                                   epsilon=EPSILON, scale=True)


def _slimnorm_bn(**kwargs):
    def build(x, is_training):
        return slimnorm.batch_norm(x, scale=True, epsilon=EPSILON, is_training=is_training,
                                   **kwargs)
    return build


def _group_family(name, tf_ops_only=False):
    """slimnorm's layer if it has one yet, else tf-slim's (labelled).

    slimnorm's layers run the fused kernel where it loads (slimnorm.kernels);
    with `tf_ops_only` they are built on the TF-ops math instead.
    """
    own = getattr(slimnorm, name, None)
    layer = own if own is not None else getattr(slim, name)
    source = "slimnorm" if own is not None else "tf_slim"

    def build(x, is_training):
        del is_training
        with kernels.tf_ops_only() if tf_ops_only else contextlib.nullcontext():
            if name == "group_norm":
                return layer(x, groups=min(32, x.shape[-1]))
            return layer(x)
    return build, source


def cases():
    """[(name, builder(x, is_training) -> y, modes, source)] in table order."""
    table = [
        (BASELINE, _tf_fused, MODES, "tensorflow"),
        ("tf_fused_updates", _tf_fused_updates, ("train",), "tensorflow"),
        ("batch_norm", _slimnorm_bn(), MODES, "slimnorm"),
        ("batch_norm_moments", _slimnorm_bn(fused=False), MODES, "slimnorm"),
        ("batch_renorm", _slimnorm_bn(renorm=True), MODES, "slimnorm"),
    ]
    for name in ("group_norm", "layer_norm", "instance_norm"):
        build, source = _group_family(name)
        table.append((name, build, ("forward", "train"), source))
    if kernels.kernels_available()[0]:
        # the same layers on the TF-ops math, the path without the kernels
        for name in ("group_norm", "layer_norm", "instance_norm"):
            build, source = _group_family(name, tf_ops_only=True)
            table.append((name + TF_OPS_SUFFIX, build, ("forward", "train"), source))
    table.append((FLOOR, _floor, MODES, "tensorflow"))
    return table


def sink(tensors):
    """A scalar that depends on every tensor: the sum of their first elements."""
    firsts = [tf.reshape(tf.slice(t, [0] * t.shape.rank, [1] * t.shape.rank), [])
              for t in tensors]
    return firsts[0] if len(firsts) == 1 else tf.add_n(firsts)


def build(builder, x, dy, mode, scope):
    """One case's fetches (a list) in the current graph, under `scope`."""
    updates = tf.compat.v1.GraphKeys.UPDATE_OPS
    with tf.compat.v1.variable_scope(scope):
        before = set(tf.compat.v1.get_collection(updates))
        y = builder(x, is_training=(mode != "inference"))
        if mode != "train":
            return [sink([y])]
        trainable = [v for v in tf.compat.v1.trainable_variables(scope=scope + "/")]
        grads = tf.gradients(y, [x] + trainable, grad_ys=dy)
        new_updates = [op for op in tf.compat.v1.get_collection(updates) if op not in before]
        return [sink(grads)] + ([tf.group(*new_updates)] if new_updates else [])
