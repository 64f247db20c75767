"""Synchronized batch norm: `batch_norm(..., sync_replicas=True)` in training.

Each replica (see `slimnorm.replicas`) normalizes with the statistics of the
global batch, the concatenation of every replica's batch, so that small
per-device batches (detection, segmentation: 1-4 images per GPU) keep the
statistics of a large one (PyTorch's SyncBatchNorm, tensorpack's
`sync_statistics`, Keras' `synchronized=True`).

Forward, one all-reduce per layer call of a [3, C] float64 tensor: the
per-channel count, sum and sum of squares of the replica's values. Each
replica takes the mean and variance of `x - shift` (shift: its first values,
see `statistics`) in the statistics' dtype, where they are accurate (the
training-mode fused kernel gives both in one pass where plain batch norm
would use the fused kernel), and turns them into sums in float64, where
sum(x^2) of large-mean inputs keeps its digits. The reduced sums give the
mean and (biased) variance of the concatenated batch whatever the replicas'
batch sizes. Then the inputs are normalized with those statistics: the
fused kernel in inference mode, or `normalize` where plain batch norm would
not use the fused kernel.

Backward, one all-reduce of [2, C]: the gradient of a replica's loss
reaches every replica's inputs through the global statistics, so the layer
has its own gradient (CollectiveReduceV2 has none): with x_hat the
normalized input, N the global count and sums over the global batch,
  dx = gamma * rsqrt(var + eps) * (dy - sum(dy) / N - x_hat * sum(dy * x_hat) / N),
where each replica reduces its local sum(dy) and sum(dy * x_hat). On the
fused path both sums and gamma * rsqrt(var + eps) * dy come from the
inference-mode gradient kernel, and the rest of dx, a per-channel scale of
x_hat plus an offset, from the inference kernel: two optimized passes and an
add instead of the formula's elementwise ops. beta's and
gamma's gradients are those local sums: the trainer adds (or averages) the
replicas' gradients, as for every other variable. Each gradient built through
a layer (each tf.gradients call that reaches it) is one more all-reduce with
a key of its own, so every replica must build the same gradients in the same
order (one per replica's loss, as clone trainers do), or the first replica
waits for the others until the step time-out.

The moving averages move towards the global statistics, so they are the
same on every replica (and clones, sharing the variables, need to run only
one clone's update ops).
"""

import tensorflow as tf

from slimnorm import batch_norm_paths as paths
from slimnorm import checks, replicas, statistics


def check(sync_replicas, *, training, batch_weights, renorm, adjustment, virtual_batch_size):
    """The replica group to synchronize over, or None; ValueError where it cannot work.

    The group, from the enclosing `slimnorm.replica_group`, is needed only when
    the layer can train (`training` not False): inference uses the moving
    averages, and an evaluation graph needs no group.
    """
    if not checks.boolean(sync_replicas, "sync_replicas") or training is False:
        return None
    unsupported = [name for name, value in (
        ("batch_weights", batch_weights), ("adjustment", adjustment),
        ("virtual_batch_size", virtual_batch_size)) if value is not None]
    if renorm:
        unsupported.append("renorm")
    if unsupported:
        raise ValueError("sync_replicas=True cannot be combined with %s; accepted: "
                         "sync_replicas=True with none of batch_weights, renorm, adjustment "
                         "and virtual_batch_size." % ", ".join(unsupported))
    group = replicas.current_group()
    if group is None:
        raise ValueError(
            "sync_replicas=True, but the layer is not built inside a replica group; accepted: "
            "build each replica's model inside `with slimnorm.replica_group(size=..., "
            "replica=...)` (the clone builder does this with --sync_batch_norm), or "
            "sync_replicas=False.")
    return group


def _local_moments(x, axis, count, fused, data_format):
    """Mean and biased variance (float64, [C]) of this replica's `x`.

    Both are taken of `x - shift` (shift: the replica's first values, a value
    of the data, so the differences are exact and small, see `statistics`)
    in x's dtype, where they are accurate, and the mean is un-shifted in
    float64. fused: the training-mode fused kernel gives both in one
    optimized pass (its normalized output is unused); otherwise two
    reductions.
    """
    f64 = tf.float64
    axes = [a for a in range(x.shape.rank) if a != axis]
    shift = statistics.first_values(x, axes)
    shifted = x - shift
    if fused:
        channels = x.shape[axis]
        _, mean, unbiased = paths.fused_train(
            shifted, beta=tf.zeros([channels], x.dtype), gamma=tf.ones([channels], x.dtype),
            epsilon=1e-3, data_format=data_format)  # the output, unused, is all it changes
        mean = tf.cast(mean, f64)
        # The kernel's variance is the biased one times n / max(n - 1, 1).
        variance = tf.cast(unbiased, f64) * (tf.maximum(count - 1.0, 1.0) / count)
    else:
        mean = tf.cast(tf.reduce_mean(shifted, axes), f64)
        variance = tf.cast(tf.reduce_mean(tf.square(shifted), axes), f64) - tf.square(mean)
    return mean + tf.cast(tf.reshape(shift, [-1]), f64), variance


def _global_moments(x, axis, group, seed, fused, data_format):
    """Mean, biased variance (x's dtype) and count (float64) of x over all replicas.

    Each replica sends n * [1, mean, variance + mean^2] in float64 (its count,
    sum and sum of squares), where the sum of squares of large-mean inputs
    keeps the digits of the variance; the reduced sums give the statistics
    of the concatenated batch whatever the replicas' batch sizes.
    """
    f64 = tf.float64
    count = statistics.count(x, [a for a in range(x.shape.rank) if a != axis], f64)
    mean, variance = _local_moments(x, axis, count, fused, data_format)
    local = count * tf.stack([tf.ones_like(mean), mean, variance + tf.square(mean)])
    global_count, total, squares = tf.unstack(replicas.all_reduce(local, group, seed,
                                                                  "forward"))
    global_count = global_count[0]
    mean = total / global_count
    variance = tf.maximum(squares / global_count - tf.square(mean), 0.0)
    return tf.cast(mean, x.dtype), tf.cast(variance, x.dtype), global_count


def train(inputs, *, group, seed, axis, dtype, beta, gamma, epsilon, fused, data_format):
    """Training-mode synchronized batch norm of `inputs` (see the module docstring).

    Args:
      group, seed: the `ReplicaGroup` and `replicas.layer_key` of this call.
      axis: channel axis; dtype: the statistics' dtype (float32 for half inputs).
      beta, gamma: [C] tensors in `dtype`, or None.
      fused: normalize with the fused kernel (rank 2 or 4, a kernel dtype).

    Returns:
      (outputs in the inputs' dtype, global mean, global biased variance,
      global count), the statistics as constants for the gradient.
    """
    channels = inputs.shape[axis]
    gamma = tf.ones([channels], dtype) if gamma is None else gamma
    beta = tf.zeros([channels], dtype) if beta is None else beta
    side = {}
    backward_calls = [0]

    @tf.custom_gradient
    def normalize(x, scale, offset):
        xf = tf.cast(x, dtype)
        mean, variance, count = _global_moments(xf, axis, group, seed, fused, data_format)
        side.update(mean=mean, variance=variance, count=count)
        if fused:
            y = paths.fused_inference(x, mean=mean, variance=variance, beta=offset, gamma=scale,
                                      epsilon=epsilon, data_format=data_format)
        else:
            y = paths.normalize(xf, mean=mean, variance=variance, epsilon=epsilon, axis=axis,
                                scale=scale, offset=offset, out_dtype=x.dtype)
        device = y.op.device

        def grad(dy):
            role = "backward%d" % backward_calls[0]
            backward_calls[0] += 1
            with tf.device(device), tf.name_scope("SyncBatchNormGrad"):
                def reduce_mean(local):
                    return replicas.all_reduce(local, group, seed, role) / tf.cast(count, dtype)

                moments = dict(mean=mean, variance=variance, epsilon=epsilon, axis=axis)
                if fused:
                    return _fused_gradient(dy, x, scale, moments, reduce_mean, data_format)
                return _elementwise_gradient(dy, xf, scale, moments, reduce_mean, x.dtype)

        return y, grad

    y = normalize(inputs, gamma, beta)
    # The statistics leave the custom gradient as constants: their gradient is
    # in `grad` (a tf.cond's gradient would otherwise differentiate them too).
    return (y, tf.stop_gradient(side["mean"]), tf.stop_gradient(side["variance"]),
            tf.stop_gradient(tf.cast(side["count"], dtype)))


def _elementwise_gradient(dy, xf, scale, moments, reduce_mean, out_dtype):
    """(dx, dgamma, dbeta) of the module docstring's formula, in elementwise ops."""
    rank, axis = xf.shape.rank, moments["axis"]
    axes = [a for a in range(rank) if a != axis]
    dyf = tf.cast(dy, xf.dtype)
    inv = tf.math.rsqrt(moments["variance"] + moments["epsilon"])
    x_hat = (xf - paths.broadcast(moments["mean"], rank, axis)) * paths.broadcast(inv, rank, axis)
    local = tf.stack([tf.reduce_sum(dyf, axes), tf.reduce_sum(dyf * x_hat, axes)])
    total = reduce_mean(local)
    dx = paths.broadcast(scale * inv, rank, axis) * (
        dyf - paths.broadcast(total[0], rank, axis)
        - x_hat * paths.broadcast(total[1], rank, axis))
    return tf.cast(dx, out_dtype), local[1], local[0]


def _fused_gradient(dy, x, scale, moments, reduce_mean, data_format):
    """(dx, dgamma, dbeta) of the module docstring's formula, in two fused kernels and an add.

    The inference-mode gradient kernel, given the global mean and variance,
    returns gamma * inv * dy and the local sums sum(dy) and sum(dy * x_hat)
    that are reduced; the rest of dx, -gamma * inv * (S0 / N + x_hat * S1 / N),
    is the inference kernel with per-channel scale and offset, one pass that
    normalizes x exactly as the forward did.
    """
    mean, variance, epsilon = moments["mean"], moments["variance"], moments["epsilon"]
    scaled, dgamma, dbeta = paths.fused_inference_gradient(
        dy, x, gamma=scale, mean=mean, variance=variance, epsilon=epsilon,
        data_format=data_format)
    offset, factor = tf.unstack(-scale * tf.math.rsqrt(variance + epsilon)
                                * reduce_mean(tf.stack([dbeta, dgamma])))
    through_statistics = paths.fused_inference(
        x, mean=mean, variance=variance, beta=offset, gamma=factor, epsilon=epsilon,
        data_format=data_format)
    if x.dtype == mean.dtype:
        return scaled + through_statistics, dgamma, dbeta
    dx = tf.cast(scaled, mean.dtype) + tf.cast(through_statistics, mean.dtype)
    return tf.cast(dx, x.dtype), dgamma, dbeta
