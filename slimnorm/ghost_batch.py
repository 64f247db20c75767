"""Ghost batch norm (Hoffer et al. 2017): `batch_norm(..., virtual_batch_size=V)`.

In training, each run of V consecutive examples of the batch is normalised
with its own statistics, as if it were a batch of its own (Keras'
`virtual_batch_size`; slim never had it): large-batch training keeps the
regularising noise of small-batch statistics. The moving averages move
towards the mean, over the virtual batches, of their means and of their
variances; inference is plain batch norm on those averages.

Two ways to compute it, as for plain batch norm:
* fused (rank 2 or 4, static shape): the virtual-batch index is moved
  next to the channels, so one FusedBatchNorm call with G*C "channels"
  (gamma and beta tiled G times) computes every virtual batch's statistics
  in one pass; one transpose in, one out.
* moments: the inputs viewed as [G, V, ...], shifted moments per (virtual
  batch, channel), then the same `normalize` as plain batch norm.
"""

import tensorflow as tf

from slimnorm import batch_norm_paths as paths
from slimnorm import checks, statistics


def check(virtual_batch_size, inputs, *, renorm, adjustment):
    """The virtual batch size as an int, or None; ValueError where it cannot work."""
    if virtual_batch_size is None:
        return None
    size = checks.integer(virtual_batch_size, "virtual_batch_size", minimum=1)
    if renorm or adjustment is not None:
        raise ValueError(
            "virtual_batch_size=%d cannot be combined with %s; accepted: renorm=False and "
            "adjustment=None with a virtual batch size." % (
                size, "renorm=True" if renorm else "adjustment"))
    batch = inputs.shape[0]
    if batch is not None and batch % size:
        raise ValueError(
            "virtual_batch_size=%d does not divide the batch size %d of inputs %s; accepted "
            "are the divisors of %d." % (size, batch, inputs.name, batch))
    return size


def _count_checked(inputs, size):
    """The number of virtual batches; a run-time check where the batch is dynamic."""
    batch = inputs.shape[0]
    if batch is not None:
        return batch // size, inputs
    dynamic = tf.shape(inputs)[0]
    check_op = tf.debugging.assert_equal(
        dynamic % size, 0, message="virtual_batch_size=%d does not divide the batch size "
        "of %s" % (size, inputs.name))
    with tf.control_dependencies([check_op]):
        return dynamic // size, tf.identity(inputs)


def values_per_channel(inputs, axis, size, dtype):
    """Values one virtual batch averages per channel: V times the other axes."""
    other = [a for a in range(1, inputs.shape.rank) if a != axis]
    return statistics.count(inputs, other, dtype) * float(size)


def fusable(inputs):
    """The fused way needs every size static (it reshapes by them)."""
    return inputs.shape.is_fully_defined()


def fused_train(inputs, *, size, beta, gamma, epsilon, data_format):
    """Returns (outputs, mean over virtual batches, mean of their unbiased variances)."""
    rank = inputs.shape.rank
    groups = inputs.shape[0] // size
    channels = int(inputs.shape[paths.channel_axis(data_format, rank)])
    rest = inputs.shape.as_list()[1:]
    x = tf.reshape(inputs, [groups, size] + rest)
    # [G, V, ..., C] -> [V, ..., G, C] (channels last) or [V, G, C, ...] (NCHW).
    if data_format == "NCHW" and rank > 2:
        perm = [1, 0] + list(range(2, rank + 1))
    else:
        perm = list(range(1, rank)) + [0, rank]
    moved = tf.transpose(x, perm)
    folded = tf.reshape(moved, _merge_groups(moved.shape.as_list(), perm.index(0)))
    y, mean, variance = paths.fused_train(folded, beta=tf.tile(beta, [groups]),
                                          gamma=tf.tile(gamma, [groups]), epsilon=epsilon,
                                          data_format=data_format)
    y = tf.transpose(tf.reshape(y, moved.shape), _inverse(perm))
    per_group = [groups, channels]
    return (tf.reshape(y, tf.shape(inputs)),
            tf.reduce_mean(tf.reshape(mean, per_group), 0),
            tf.reduce_mean(tf.reshape(variance, per_group), 0))


def _merge_groups(shape, group_axis):
    """The shape with the group axis merged into the (following) channel axis."""
    merged = list(shape)
    merged[group_axis + 1] *= merged[group_axis]
    del merged[group_axis]
    return merged


def _inverse(perm):
    inverse = [0] * len(perm)
    for position, axis in enumerate(perm):
        inverse[axis] = position
    return inverse


def moments_train(x, *, size, axis, batch_weights, beta, gamma, epsilon, out_dtype):
    """Returns (outputs, mean over virtual batches, mean of their biased variances)."""
    groups, x = _count_checked(x, size)
    view_shape = tf.concat([[groups, size], tf.shape(x)[1:]], 0)
    view = tf.reshape(x, view_shape)
    view.set_shape([None, size] + x.shape.as_list()[1:])
    view_axis = axis + 1
    axes = [a for a in range(1, view.shape.rank) if a != view_axis]
    shift = statistics.first_values(view, axes)
    if batch_weights is None:
        mean, variance = tf.nn.moments(view - shift, axes, keepdims=True)
    else:
        weights = tf.reshape(tf.cast(batch_weights, x.dtype),
                             [-1, size] + [1] * (view.shape.rank - 2))
        mean, variance = tf.nn.weighted_moments(view - shift, axes, weights, keepdims=True)
    mean = mean + shift
    y = paths.normalize(view, mean=mean, variance=variance, epsilon=epsilon, axis=view_axis,
                        scale=gamma, offset=beta, out_dtype=out_dtype)
    every = [a for a in range(view.shape.rank) if a != view_axis]
    return (tf.reshape(y, tf.shape(x)), tf.reduce_mean(mean, every),
            tf.reduce_mean(variance, every))
