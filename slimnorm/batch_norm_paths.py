"""The two ways batch norm is computed; both return the same quantities.

* fused: TensorFlow's FusedBatchNorm kernel (one pass for statistics, one for
  the output, a hand-written gradient). Rank 2 or 4, half or single precision. Its batch variance
  output is Bessel-corrected (unbiased): tensorflow issue 55545.
* moments: `tf.nn.moments` / `tf.nn.weighted_moments` followed by
  `tf.nn.batch_normalization`, any rank, batch weights, and the extra
  per-channel transforms of batch renorm and `adjustment`. Its variance is
  the biased (divide-by-n) one.

Half-precision inputs are normalised with float32 statistics: the fused
kernel does this itself, the moments path casts.
"""

import tensorflow as tf

# The fused kernel refuses smaller epsilons (cuDNN's limit); its Python
# wrapper raises epsilon to this value, and so do we, explicitly.
FUSED_MIN_EPSILON = 1.001e-5
# Input dtypes the kernel has (float64 goes through the moments path).
FUSED_DTYPES = (tf.float16, tf.bfloat16, tf.float32)


def channel_axis(data_format, rank):
    return 1 if data_format == "NCHW" and rank > 2 else rank - 1


def _as_rank4(inputs, rank, data_format):
    """Rank-2 [N, C] inputs go through the kernel as [N, 1, 1, C]."""
    if rank == 4:
        return inputs, data_format
    return tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]]), "NHWC"


def _from_rank4(outputs, inputs, rank):
    return outputs if rank == 4 else tf.reshape(outputs, tf.shape(inputs))


def fused_train(inputs, gamma, beta, epsilon, data_format, rank):
    """Returns (outputs, batch mean, unbiased batch variance)."""
    x, fmt = _as_rank4(inputs, rank, data_format)
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=max(epsilon, FUSED_MIN_EPSILON), data_format=fmt,
        is_training=True)
    return _from_rank4(y, inputs, rank), mean, variance


def fused_inference(inputs, gamma, beta, mean, variance, epsilon, data_format, rank):
    x, fmt = _as_rank4(inputs, rank, data_format)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, mean=mean, variance=variance,
        epsilon=max(epsilon, FUSED_MIN_EPSILON), data_format=fmt, is_training=False)
    return _from_rank4(y, inputs, rank)


def broadcast(param, rank, axis):
    """[C] -> a shape that broadcasts along `axis` (a no-op for the last axis)."""
    if param is None or axis == rank - 1:
        return param
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(param, shape)


def shifted_moments(inputs, axis, rank, dtype, batch_weights=None):
    """Per-channel statistics of `inputs - shift`, computed in `dtype`.

    The shift is one sample's value per channel (no gradient). Subtracting it
    first keeps the reduction on values of the data's spread rather than its
    offset: for inputs like 1e4 + N(0, 1) in float32 the plain mean is off by
    ~1e-3 (the float32 spacing at 1e4), and x - mean inherits that error.
    Normalising the shifted tensor with the shifted mean is exact.

    Returns (shifted inputs, shifted mean, biased variance, shift); the batch
    mean is shifted mean + shift, each of shape [C].
    """
    x = tf.cast(inputs, dtype)
    axes = [a for a in range(rank) if a != axis]
    begin = [0] * rank
    size = [1] * rank
    size[axis] = -1
    shift = tf.stop_gradient(tf.reshape(tf.slice(x, begin, size), [-1]))
    x = x - broadcast(shift, rank, axis)
    if batch_weights is None:
        mean, variance = tf.nn.moments(x, axes)
    else:
        weights = tf.reshape(tf.cast(batch_weights, dtype), [-1] + [1] * (rank - 1))
        mean, variance = tf.nn.weighted_moments(x, axes, weights)
    return x, mean, variance, shift


def moments_normalize(x, mean, variance, offset, scale, epsilon, axis, rank, dtype,
                      out_dtype=None):
    """tf.nn.batch_normalization in `dtype`, cast to `out_dtype` (x's dtype)."""
    out_dtype = out_dtype or x.dtype
    y = tf.nn.batch_normalization(
        tf.cast(x, dtype), broadcast(mean, rank, axis), broadcast(variance, rank, axis),
        broadcast(offset, rank, axis), broadcast(scale, rank, axis), epsilon)
    return tf.cast(y, out_dtype)


def values_per_channel(inputs, axis, rank, dtype):
    """Number of values each channel's statistics average over (n of n/(n-1))."""
    dims = [inputs.shape[a] for a in range(rank) if a != axis]
    if all(d is not None for d in dims):
        count = 1
        for d in dims:
            count *= int(d)
        return tf.constant(float(count), dtype)
    shape = tf.shape(inputs)
    return tf.cast(tf.reduce_prod([shape[a] for a in range(rank) if a != axis]), dtype)


def convert_variance(variance, count, unbiased_in, estimator):
    """Variance for the moving average, per `moving_variance_estimator`.

    'slim' keeps what the path produced (unbiased on the fused path, biased on
    the moments path, as tf-slim did); 'unbiased' and 'biased' make both paths
    store the same estimator.
    """
    if estimator == "unbiased" and not unbiased_in:
        return variance * count / tf.maximum(count - 1.0, 1.0)
    if estimator == "biased" and unbiased_in:
        return variance * (count - 1.0) / count
    return variance
