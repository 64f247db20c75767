"""Plain numpy implementations: the independent check every test uses.

Written for clarity, not speed, in float64 whatever the input dtype: these
are the formulas of the papers (Ioffe & Szegedy 2015; Ioffe 2017; Wu & He
2018; Ba et al. 2016; Ulyanov et al. 2016), not a port of the TensorFlow
code under test. Variance is always the two-pass `mean((x - mean)**2)`, so
large-mean inputs (1e4 + N(0, 1)) have an exact reference.
"""

import numpy as np


def _f64(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def channel_axis(data_format, rank):
    """Index of the channel axis for 'NHWC' (last) or 'NCHW' (1)."""
    return 1 if data_format == "NCHW" else rank - 1


def _broadcast_params(param, rank, axis):
    shape = [1] * rank
    shape[axis] = -1
    return np.reshape(param, shape)


def moments(x, axes):
    """Mean and biased (divide-by-n) variance over `axes`, float64."""
    x = _f64(x)
    mean = x.mean(axis=tuple(axes), keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=tuple(axes), keepdims=True)
    return mean, variance


def weighted_moments(x, axes, weights):
    """Frequency-weighted mean and variance, as `tf.nn.weighted_moments`."""
    x, weights = _f64(x), _f64(weights)
    weights = np.broadcast_to(weights, x.shape)
    total = weights.sum(axis=tuple(axes), keepdims=True)
    mean = (weights * x).sum(axis=tuple(axes), keepdims=True) / total
    variance = (weights * (x - mean) ** 2).sum(axis=tuple(axes), keepdims=True) / total
    return mean, variance


def normalize(x, mean, variance, offset, scale, epsilon):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, float64."""
    y = (_f64(x) - mean) / np.sqrt(variance + epsilon)
    if scale is not None:
        y = y * scale
    if offset is not None:
        y = y + offset
    return y


def unbiased_variance(variance, count):
    """Bessel's correction: the biased variance of `count` values times n/(n-1)."""
    return _f64(variance) * count / max(count - 1.0, 1.0)


def batch_norm_train(x, gamma=None, beta=None, epsilon=1e-3, data_format="NHWC",
                     batch_weights=None):
    """Training-mode batch norm: normalise with the batch's own statistics.

    Returns (y, mean, variance) with mean/variance of shape [C] and the
    variance biased (divide by the number of values per channel).
    """
    x = _f64(x)
    rank = x.ndim
    axis = channel_axis(data_format, rank)
    axes = [a for a in range(rank) if a != axis]
    if batch_weights is None:
        mean, variance = moments(x, axes)
    else:
        w = np.reshape(_f64(batch_weights), [-1] + [1] * (rank - 1))
        mean, variance = weighted_moments(x, axes, w)
    y = normalize(x, mean, variance,
                  None if beta is None else _broadcast_params(_f64(beta), rank, axis),
                  None if gamma is None else _broadcast_params(_f64(gamma), rank, axis),
                  epsilon)
    return y, mean.reshape(-1), variance.reshape(-1)


def ghost_batch_norm_train(x, virtual_batch_size, gamma=None, beta=None, epsilon=1e-3,
                           data_format="NHWC"):
    """Ghost batch norm: each run of `virtual_batch_size` examples normalised alone.

    Returns (y, means, variances): means/variances of shape [batches, C], one
    row per virtual batch, variances biased. The moving averages' targets are
    their means over the rows.
    """
    x = _f64(x)
    chunks = [batch_norm_train(x[i:i + virtual_batch_size], gamma, beta, epsilon, data_format)
              for i in range(0, x.shape[0], virtual_batch_size)]
    return (np.concatenate([y for y, _, _ in chunks]), np.stack([m for _, m, _ in chunks]),
            np.stack([v for _, _, v in chunks]))


def batch_norm_inference(x, mean, variance, gamma=None, beta=None, epsilon=1e-3,
                         data_format="NHWC"):
    """Inference-mode batch norm with fixed (moving) statistics of shape [C]."""
    x = _f64(x)
    rank = x.ndim
    axis = channel_axis(data_format, rank)

    def b(p):
        return None if p is None else _broadcast_params(_f64(p), rank, axis)

    return normalize(x, b(mean), b(variance), b(beta), b(gamma), epsilon)


def moving_average(average, value, decay):
    """One step of an exponential moving average: a - (a - v) * (1 - decay)."""
    average = _f64(average)
    return average - (average - _f64(value)) * (1.0 - decay)


def zero_debiased_moving_average(values, decay):
    """Zero-debiased moving average after feeding `values` in order.

    The average starts at 0; after t steps the biased average is divided by
    1 - decay**t (Kingma & Ba 2015), so even the first step returns the value.
    """
    biased = 0.0
    for step, value in enumerate(values, start=1):
        biased = moving_average(biased, value, decay)
        result = biased / (1.0 - decay ** step)
    return result


def batch_renorm_train(x, renorm_mean, renorm_stddev, gamma=None, beta=None,
                       epsilon=1e-3, rmin=None, rmax=None, dmax=None,
                       data_format="NHWC"):
    """Training-mode batch renormalization (Ioffe 2017, Algorithm 1).

    y = ((x - mu_B) / sigma_B * r + d) * gamma + beta with
    r = clip(sigma_B / sigma, rmin, rmax), d = clip((mu_B - mu) / sigma, -dmax, dmax),
    sigma_B = sqrt(var_B + epsilon) and (mu, sigma) the renorm moving averages,
    sigma at least sqrt(epsilon).
    Returns (y, mu_B, var_B, sigma_B, r, d), statistics of shape [C].
    """
    x = _f64(x)
    rank = x.ndim
    axis = channel_axis(data_format, rank)
    axes = [a for a in range(rank) if a != axis]
    mean, variance = moments(x, axes)
    mean, variance = mean.reshape(-1), variance.reshape(-1)
    stddev = np.sqrt(variance + epsilon)
    sigma = np.maximum(_f64(renorm_stddev), np.sqrt(epsilon))   # slim's layer floors it
    r = stddev / sigma
    d = (mean - _f64(renorm_mean)) / sigma
    if rmin is not None:
        r = np.maximum(r, rmin)
    if rmax is not None:
        r = np.minimum(r, rmax)
    if dmax is not None:
        d = np.clip(d, -dmax, dmax)
    scale = r if gamma is None else r * _f64(gamma)
    offset = d if gamma is None else d * _f64(gamma)
    if beta is not None:
        offset = offset + _f64(beta)

    def b(p):
        return _broadcast_params(p, rank, axis)

    y = normalize(x, b(mean), b(variance), b(offset), b(scale), epsilon)
    return y, mean, variance, stddev, r, d


def group_norm(x, groups, gamma=None, beta=None, epsilon=1e-6, channels_axis=-1,
               reduction_axes=(-3, -2)):
    """Group norm (Wu & He 2018) with tf-slim's axis conventions.

    Channels along `channels_axis` are split into `groups` groups of C/groups
    consecutive channels; statistics are taken per sample over the group's
    channels and `reduction_axes`. gamma/beta have shape [C].
    """
    x = _f64(x)
    rank = x.ndim
    c_axis = channels_axis % rank
    red = [a % rank for a in reduction_axes]
    channels = x.shape[c_axis]
    split_shape = list(x.shape)
    split_shape[c_axis:c_axis + 1] = [groups, channels // groups]
    xs = x.reshape(split_shape)
    # Axes after the channel axis move by one in the split tensor.
    red_split = [a + 1 if a > c_axis else a for a in red] + [c_axis + 1]
    mean, variance = moments(xs, red_split)
    y = ((xs - mean) / np.sqrt(variance + epsilon)).reshape(x.shape)
    params_shape = [1] * rank
    params_shape[c_axis] = channels
    if gamma is not None:
        y = y * _f64(gamma).reshape(params_shape)
    if beta is not None:
        y = y + _f64(beta).reshape(params_shape)
    return y


def layer_norm(x, gamma=None, beta=None, epsilon=1e-12, begin_norm_axis=1,
               begin_params_axis=-1):
    """Layer norm (Ba et al. 2016) with tf-slim's axis conventions.

    Statistics per sample over axes [begin_norm_axis, rank); gamma/beta have
    the shape x.shape[begin_params_axis:].
    """
    x = _f64(x)
    rank = x.ndim
    mean, variance = moments(x, range(begin_norm_axis % rank, rank))
    y = (x - mean) / np.sqrt(variance + epsilon)
    if gamma is not None:
        y = y * _f64(gamma)
    if beta is not None:
        y = y + _f64(beta)
    return y


def instance_norm(x, gamma=None, beta=None, epsilon=1e-6, data_format="NHWC"):
    """Instance norm (Ulyanov et al. 2016): per sample and channel over space."""
    x = _f64(x)
    rank = x.ndim
    axis = channel_axis(data_format, rank)
    spatial = [a for a in range(1, rank) if a != axis]
    mean, variance = moments(x, spatial)
    y = (x - mean) / np.sqrt(variance + epsilon)
    if gamma is not None:
        y = y * _broadcast_params(_f64(gamma), rank, axis)
    if beta is not None:
        y = y + _broadcast_params(_f64(beta), rank, axis)
    return y
