"""The fused group-family op in a graph: when it applies, its view, its gradients.

`fused_normalize` is what `group_family.normalize` calls first; it returns
None whenever the kernel path does not apply (see `slimnorm.kernels`), and
the caller then builds `group_math`'s TF-ops math instead.

The op sees the inputs as a rank-3 view: [B, R, C] with the channels last or
[B, C, R] with them first, where B merges the sample ('b') axes, R the
reduced ('r') axes and C the parameter axes, groups ('g') then members
('m'); a cell is one sample and one group. So the layer's role string,
with runs merged, must be one of  b? r? g? m?  or  b? g? m? r  (no
transpose: anything else falls back).

Gradients: `SlimnormGroupNormGrad` gives dx, dgamma and dbeta in one op. Its
own gradient (second derivatives, e.g. gradient penalties) rebuilds the
first derivative from `group_math`'s differentiable TF ops and
differentiates that, in graph mode.
"""

import re

import tensorflow as tf

from slimnorm import group_math, kernels

KERNEL_DTYPES = (tf.float32, tf.float16, tf.bfloat16)
_CHANNELS_LAST = re.compile(r"b?r?(g?m?)$")
_CHANNELS_FIRST = re.compile(r"b?(g?m?)r$")


def _merged_roles(sizes_roles):
    roles = ""
    for _, role in sizes_roles:
        if not roles or roles[-1] != role:
            roles += role
    return roles


def _product(sizes):
    total = 1
    for size in sizes:
        total = total * size
    return total


def kernel_view(sizes_roles):
    """(view shape, channels_last, groups) for the op, or None if it does not fit."""
    roles = _merged_roles(sizes_roles)
    channels_last = _CHANNELS_LAST.match(roles)
    match = channels_last or _CHANNELS_FIRST.match(roles)
    if match is None or not match.group(1):
        return None

    def size(role):
        return _product([s for s, r in sizes_roles if r == role])

    batch, reduced, groups, members = size("b"), size("r"), size("g"), size("m")
    channels = groups * members
    view = [batch, reduced, channels] if channels_last else [batch, channels, reduced]
    if not all(isinstance(s, int) for s in view):
        view = tf.stack([tf.cast(s, tf.int32) for s in view])
    return view, bool(channels_last), groups


def _on_gpu(tensor):
    device = tensor.device or ""
    if "GPU" in device.upper():
        return True
    return not device and bool(tf.config.list_physical_devices("GPU"))


def fused_normalize(inputs, sizes_roles, gamma, beta, epsilon):
    """The normalised inputs as the op's view (inputs' dtype), or None.

    gamma, beta: float32 tensors of the parameters' shape (channels in
    'g', 'm' order), or None. The caller reshapes the result back.
    """
    if inputs.dtype.base_dtype not in KERNEL_DTYPES or not kernels.enabled():
        return None
    fit = kernel_view(sizes_roles)
    if fit is None:
        return None
    library, _ = kernels.load()
    if library is None:
        return None
    view, channels_last, groups = fit
    x = tf.reshape(inputs, view)
    if _on_gpu(x):
        return None
    channels = x.shape[1 if not channels_last else 2]
    gamma = tf.ones([channels]) if gamma is None else tf.reshape(gamma, [-1])
    beta = tf.zeros([channels]) if beta is None else tf.reshape(beta, [-1])
    y, _, _ = library.slimnorm_group_norm(x, gamma, beta, groups=groups, epsilon=epsilon,
                                          channels_last=channels_last)
    return y


@tf.RegisterGradient("SlimnormGroupNorm")
def _group_norm_grad(op, dy, _dmean, _drstd):
    # The statistics outputs only feed this gradient, so their own gradients
    # (None or zero) carry nothing.
    library, _ = kernels.load()
    return library.slimnorm_group_norm_grad(
        dy, op.inputs[0], op.inputs[1], op.outputs[1], op.outputs[2],
        groups=op.get_attr("groups"), epsilon=op.get_attr("epsilon"),
        channels_last=op.get_attr("channels_last"))


@tf.RegisterGradient("SlimnormGroupNormGrad")
def _group_norm_grad_grad(op, ddx, ddgamma, ddbeta):
    # dx, dgamma, dbeta as functions of (dy, x, gamma), rebuilt from group_math
    # (whose statistics come from x: the shifted_mean and rstd inputs then get
    # no gradient of their own).
    dy, x, gamma = op.inputs[0], op.inputs[1], op.inputs[2]
    groups, channels_last = op.get_attr("groups"), op.get_attr("channels_last")
    batch, length = tf.shape(x)[0], tf.shape(x)[2 if not channels_last else 1]
    members = x.shape[2 if channels_last else 1] // groups
    if channels_last:
        shape, roles = [batch, length, groups, members], "brgm"
        param_shape = [1, 1, groups, members]
    else:
        shape, roles = [batch, groups, members, length], "bgmr"
        param_shape = [1, groups, members, 1]
    x4 = tf.reshape(tf.cast(x, tf.float32), tf.stack(shape))
    dy4 = tf.reshape(tf.cast(dy, tf.float32), tf.stack(shape))
    gamma4 = tf.reshape(gamma, param_shape)
    beta4 = tf.zeros_like(gamma4)
    y4 = group_math.normalize(x4, roles, gamma4, beta4, op.get_attr("epsilon"))
    first = tf.gradients(y4, [x4, gamma4, beta4], grad_ys=dy4)
    upstream = [tf.zeros_like(t) if g is None else tf.reshape(tf.cast(g, tf.float32), tf.shape(t))
                for g, t in zip((ddx, ddgamma, ddbeta), first)]
    second = tf.gradients(first, [dy4, x4, gamma4], grad_ys=upstream)
    second = [tf.zeros_like(t) if g is None else g for g, t in zip(second, (dy4, x4, gamma4))]
    d_dy, d_x, d_gamma = second
    return (tf.cast(tf.reshape(d_dy, tf.shape(dy)), dy.dtype),
            tf.cast(tf.reshape(d_x, tf.shape(x)), x.dtype),
            tf.reshape(d_gamma, tf.shape(gamma)), None, None)
