"""The normalisation math of group, layer and instance norm, with its gradient.

All three layers normalise each "cell" of values by the cell's own mean and
variance, then scale and shift by per-parameter gamma and beta. They differ
only in which values form a cell and along which axes the parameters vary,
so each layer reshapes its inputs (never transposes them) into a view and
names the role of each view axis:

  'b'  batch-like: cells differ along it, parameters do not (the samples);
  'r'  reduced: inside a cell, parameters constant (the spatial positions);
  'g'  group: cells differ along it, parameters vary too (GN's groups, IN's
       channels);
  'm'  member: inside a cell, parameters vary (the channels of a GN group).

Group norm NHWC is the view [N, H*W, G, C/G] with roles 'brgm', instance norm
NHWC is [N, H*W, C] 'brg', layer norm over [N, H, W, C] with per-channel
parameters is [N, H*W, C] 'brm'.

Why not tf.nn.moments + tf.nn.batch_normalization and TensorFlow's own
gradient, as tf-slim does: that builds about twenty full-size temporaries per
layer. Here every full-size pass is one of these, on the view, with
coefficients that lack only the 'r' axes:

  forward   d = x - shift; sum(d) and |d|^2 over 'r'; y = d * a + b
  backward  sum(dy) and sum(dy * d) over 'r'; dx = dy * a + (d * B + C)

with a, b, B, C small per-cell or per-parameter tensors. Everything else
(combining the per-parameter sums of a cell, gamma and beta gradients) runs
on tensors without the 'r' axes. What this costs against TF's fused batch
norm and tf-slim's layers is measured by `slimnorm bench norms` (numbers in
docs/group_math_speed.md). The layers run this math where the fused C++ op
of `slimnorm.kernels` does not apply (same formulas, two passes each way);
that op's second derivative is built from it too.

Why the shift: one pass of sums and sums of squares, sum(x^2)/n - mean^2,
cancels catastrophically when the mean is large against the spread (float32
inputs 1e4 + N(0, 1): all digits lost). Subtracting a value of the cell first
(the mean over the cell's members at its first 'r' position) makes both sums
small, so the variance keeps float32 precision; and normalising `d` rather
than `x` keeps the output exact too (folding the mean into `b` and computing
x * a + b would lose the float32 spacing at 1e4, 1e-3, in the output).
The cost: d must exist anyway for the sums, and the backward reuses it, so
the forward keeps d, not x, alive until the gradient runs. What is left of
the cancellation: the variance's relative error is about float32 epsilon
times 1 + ((shift - mean) / std)^2, small unless a cell's first values are
far outliers of the cell.
"""

import tensorflow as tf

from slimnorm import statistics


def _axes(roles, kinds):
    return [axis for axis, role in enumerate(roles) if role in kinds]


def _sum(tensor, axes):
    return tf.reduce_sum(tensor, axes, keepdims=True) if axes else tensor


def _shape_with_ones(x, axes):
    """x's shape (static where known) with size 1 on `axes`, for broadcast_to."""
    dynamic = None
    dims = []
    for axis, size in enumerate(x.shape):
        if axis in axes:
            dims.append(1)
        elif size is not None:
            dims.append(int(size))
        else:
            dynamic = tf.shape(x) if dynamic is None else dynamic
            dims.append(dynamic[axis])
    if all(isinstance(d, int) for d in dims):
        return dims
    return tf.stack(dims)


def _shift(x, roles):
    """One float per cell, near the cell's values: the mean of its members at
    the first position of the reduced axes (no gradient: any value works)."""
    return _mean(statistics.first_values(x, _axes(roles, "r")), _axes(roles, "m"))


def _mean(tensor, axes):
    return tf.reduce_mean(tensor, axes, keepdims=True) if axes else tensor


def normalize(x, roles, gamma, beta, epsilon):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta, per cell of `roles`.

    Args:
      x: the view, a float tensor of the compute dtype (float32 or float64).
      roles: a string, one of 'b', 'r', 'g', 'm' per axis of x.
      gamma, beta: None, or tensors of x's dtype whose shape is x's on the
        'g' and 'm' axes and 1 elsewhere.
      epsilon: Python float > 0.

    Returns:
      The normalised view, same shape and dtype as x.
    """
    r_axes, m_axes, b_axes = _axes(roles, "r"), _axes(roles, "m"), _axes(roles, "b")
    count = statistics.count(x, r_axes + m_axes)
    # Per-parameter coefficients get the full shape without the 'r' axes, so
    # each full-size op broadcasts along one run of axes ([N, 1, C] against
    # [N, H*W, C]), the pattern TensorFlow's kernels handle fastest.
    # (Without 'r' axes that shape is x's own: plain broadcasting then.)
    coef_shape = _shape_with_ones(x, r_axes) if r_axes else None

    def coef(tensor):
        return tensor if coef_shape is None else tf.broadcast_to(tensor, coef_shape)

    params = [t for t in (gamma, beta) if t is not None]

    @tf.custom_gradient
    def _normalize(x, *params):
        gamma_, beta_ = _unpack(params, gamma is not None, beta is not None)
        d = x - coef(_shift(x, roles))
        sum_d = _sum(d, r_axes)
        sum_d2 = tf.square(_norm(d, r_axes))
        mean_d = _sum(sum_d, m_axes) / count          # cell mean, relative to the shift
        variance = tf.maximum(_sum(sum_d2, m_axes) / count - tf.square(mean_d), 0.0)
        rstd = tf.math.rsqrt(variance + epsilon)
        scale = coef(rstd if gamma_ is None else gamma_ * rstd)
        offset = -coef(mean_d) * scale
        if beta_ is not None:
            offset += beta_
        y = d * scale + offset

        def grad(dy):
            sum_dy = _sum(dy, r_axes)
            # sum over 'r' of dy * (x - mean), per parameter
            sum_dy_xc = _sum(dy * d, r_axes) - mean_d * sum_dy
            g_dy = sum_dy if gamma_ is None else gamma_ * sum_dy
            g_dy_xc = sum_dy_xc if gamma_ is None else gamma_ * sum_dy_xc
            # d loss / d x = rstd * (g - mean(g) - x_hat * mean(g * x_hat)),
            # g = gamma * dy, x_hat = (d - mean_d) * rstd, means over the cell.
            mean_g = _sum(g_dy, m_axes) / count
            mean_g_xhat = _sum(g_dy_xc, m_axes) * rstd / count
            d_coef = -rstd * rstd * mean_g_xhat
            const = -d_coef * mean_d - rstd * mean_g
            dx = dy * scale + (d * coef(d_coef) + coef(const))
            grads = []
            if gamma_ is not None:
                grads.append(tf.reshape(_sum(sum_dy_xc * rstd, b_axes), tf.shape(gamma_)))
            if beta_ is not None:
                grads.append(tf.reshape(_sum(sum_dy, b_axes), tf.shape(beta_)))
            return (dx,) + tuple(grads)

        return y, grad

    return _normalize(x, *params)


def _unpack(params, has_gamma, has_beta):
    params = list(params)
    gamma = params.pop(0) if has_gamma else None
    beta = params.pop(0) if has_beta else None
    return gamma, beta


def _norm(tensor, axes):
    """Euclidean norm over `axes`: the sum of squares without a squared copy."""
    if not axes:
        return tf.abs(tensor)
    return tf.math.reduce_euclidean_norm(tensor, axes, keepdims=True)
