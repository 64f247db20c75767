"""The two ways batch norm is computed; both return the same quantities.

* fused: TensorFlow's FusedBatchNorm kernel (one pass for statistics, one for
  the output, a hand-written gradient). Rank 2, 4 or 5 (NDHWC/NCDHW), half
  or single precision. Its batch variance output is Bessel-corrected
  (unbiased): tensorflow issue 55545.
* moments: shifted `tf.nn.moments` / `tf.nn.weighted_moments`, then
  `normalize`, any rank, batch weights, and the extra per-channel transforms
  of batch renorm and `adjustment`. Its variance is the biased (divide-by-n)
  one.

Training and inference on the moments path go through the same `normalize`
arithmetic, so once the moving averages have converged to the batch
statistics, a training-mode and an eval-mode output are the same numbers (as
slim's were), not merely close.

Half-precision inputs are normalised with float32 statistics: the fused
kernel does this itself, the moments path casts.
"""

import tensorflow as tf

from slimnorm import batch_renorm, statistics

# Input dtypes the kernel has (float64 goes through the moments path).
FUSED_DTYPES = (tf.float16, tf.bfloat16, tf.float32)
# The kernel's layouts for rank 4 and 5 inputs, by slim's `data_format` name.
KERNEL_FORMATS = {4: {"NHWC": "NHWC", "NCHW": "NCHW"}, 5: {"NHWC": "NDHWC", "NCHW": "NCDHW"}}


def channel_axis(data_format, rank):
    return 1 if data_format == "NCHW" and rank > 2 else rank - 1


def _as_kernel_input(inputs, rank, data_format):
    """(tensor, kernel data_format): rank 4 and 5 as they are, rank 2 as [N, 1, 1, C].

    epsilon goes to the kernel as given: TensorFlow 2.21's fused_batch_norm
    passes it through (older releases raised it to 1.001e-5, see
    docs/fidelity.md), and so slim on 2.21 did.
    """
    if rank in KERNEL_FORMATS:
        return inputs, KERNEL_FORMATS[rank][data_format]
    return tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]]), "NHWC"


def _from_kernel_output(outputs, inputs, rank):
    return outputs if rank in KERNEL_FORMATS else tf.reshape(outputs, tf.shape(inputs))


def fused_train(inputs, *, beta, gamma, epsilon, data_format):
    """Returns (outputs, batch mean, unbiased batch variance)."""
    rank = inputs.shape.rank
    x, fmt = _as_kernel_input(inputs, rank, data_format)
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=epsilon, data_format=fmt,
        is_training=True)
    return _from_kernel_output(y, inputs, rank), mean, variance


def fused_inference(inputs, *, mean, variance, beta, gamma, epsilon, data_format):
    rank = inputs.shape.rank
    x, fmt = _as_kernel_input(inputs, rank, data_format)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, mean=mean, variance=variance,
        epsilon=epsilon, data_format=fmt, is_training=False)
    return _from_kernel_output(y, inputs, rank)


def fused_inference_gradient(dy, inputs, *, gamma, mean, variance, epsilon, data_format):
    """The inference-mode fused gradient kernel: statistics taken as constants.

    Returns (dy * gamma * rsqrt(variance + epsilon), sum(dy * x_hat), sum(dy)),
    x_hat = (x - mean) * rsqrt(variance + epsilon), the sums per channel over
    this batch: in one pass of an optimized kernel, for synchronized batch
    norm to add the terms that come through the global statistics.
    """
    rank = inputs.shape.rank
    x, fmt = _as_kernel_input(inputs, rank, data_format)
    grad, _ = _as_kernel_input(dy, rank, data_format)
    dx, dgamma, dbeta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
        y_backprop=grad, x=x, scale=gamma, reserve_space_1=mean, reserve_space_2=variance,
        reserve_space_3=tf.zeros([0], mean.dtype), epsilon=epsilon,
        data_format=fmt, is_training=False)
    return _from_kernel_output(dx, inputs, rank), dgamma, dbeta


def broadcast(param, rank, axis):
    """[C] -> a shape that broadcasts along `axis` (a no-op for the last axis)."""
    if param is None or axis == rank - 1 or param.shape.rank != 1:
        return param
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(param, shape)


def moments(x, axis, batch_weights=None):
    """Per-channel batch mean and biased variance of `x`, each of shape [C].

    The statistics are taken of `x - shift` (see `statistics`): for inputs
    like 1e4 + N(0, 1) in float32 the unshifted variance would lose its
    digits; the mean is then the shifted mean + shift.
    """
    rank = x.shape.rank
    axes = [a for a in range(rank) if a != axis]
    shift = statistics.first_values(x, axes)
    shifted = x - shift
    if batch_weights is None:
        mean, variance = tf.nn.moments(shifted, axes)
    else:
        weights = tf.reshape(tf.cast(batch_weights, x.dtype), [-1] + [1] * (rank - 1))
        mean, variance = tf.nn.weighted_moments(shifted, axes, weights)
    return mean + tf.reshape(shift, [-1]), variance


def normalize(x, *, mean, variance, epsilon, axis, scale=None, offset=None, out_dtype=None):
    """(x - mean) * rsqrt(variance + epsilon) * scale + offset, cast to `out_dtype`.

    `mean` and `variance` are [C]; `scale` and `offset` are None, [C], or any
    shape that broadcasts against x (batch renorm's and `adjustment`'s
    transforms). Subtracting the mean first keeps the output exact on
    large-mean inputs, in training and in inference alike. The ops live in a
    `batchnorm` name scope, as tf.nn.batch_normalization's (and so slim's) did.
    """
    rank = x.shape.rank
    with tf.name_scope("batchnorm"):
        factor = tf.math.rsqrt(broadcast(variance, rank, axis) + epsilon)
        if scale is not None:
            factor = factor * broadcast(scale, rank, axis)
        y = (x - broadcast(mean, rank, axis)) * factor
        if offset is not None:
            y = y + broadcast(offset, rank, axis)
        return y if out_dtype in (None, y.dtype) else tf.cast(y, out_dtype)


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


def training_transforms(x, *, axis, mean, variance, beta, gamma, epsilon, adjustment,
                        renorm_vars, clipping):
    """(scale, offset) of the moments path's training output after x_hat.

    Plain batch norm: (gamma, beta). With batch renorm's (r, d) and
    `adjustment`'s (scale, bias), innermost first: x_hat -> x_hat * r + d ->
    * adj_scale + adj_bias -> * gamma + beta, composed into one affine map.
    `adjustment` may return any shape that broadcasts against the inputs, so
    next to it the map is composed in the inputs' layout, not per channel.
    """
    def b(param):
        return param if adjustment is None else broadcast(param, x.shape.rank, axis)

    scale, offset = b(gamma), b(beta)
    if adjustment is not None:
        adj_scale, adj_bias = adjustment(tf.shape(x))
        scale, offset = compose(tf.cast(adj_scale, x.dtype), tf.cast(adj_bias, x.dtype),
                                 scale, offset)
    if renorm_vars is not None:
        r, d = batch_renorm.correction(mean, variance, epsilon, *renorm_vars, clipping)
        scale, offset = compose(b(r), b(d), scale, offset)
    return scale, offset


def compose(first_scale, first_offset, then_scale, then_offset):
    """(x * first_scale + first_offset) * then_scale + then_offset as one affine map."""
    scale, offset = first_scale, first_offset
    if then_scale is not None:
        scale, offset = scale * then_scale, offset * then_scale
    if then_offset is not None:
        offset = offset + then_offset
    return scale, offset
