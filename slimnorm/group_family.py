"""What group, layer and instance norm share around their math.

Each of the three layers only decides, axis by axis, what its inputs' axes
are to the normalisation (a role, see `group_math`: batch-like, reduced,
group, member). This module does the rest the same way for all three:
checks the common arguments, reshapes the inputs into the view (runs of
axes with one role merged, so no transpose is ever needed), creates beta and
gamma as slim model variables, runs the math (the fused kernel of
`slimnorm.kernels` where it applies, else `group_math.normalize` in the
compute dtype, float32 for float16/bfloat16 inputs) and passes the output
through the activation and slim's outputs collections.
"""

import tensorflow as tf
import tf_slim as slim

from slimnorm import checks, group_math, variables
from slimnorm.kernels import ops as kernel_ops

PARAM_KEYS = ("beta", "gamma")


def check_common(inputs, epsilon, param_initializers, param_regularizers, activation_fn,
                 variables_collections):
    """Checks the arguments every layer of the family has.

    Returns (inputs as a tensor, compute dtype, epsilon, initializers dict,
    regularizers dict).
    """
    inputs = tf.convert_to_tensor(inputs)
    dtype = checks.param_dtype(inputs)
    epsilon = checks.non_negative(epsilon, "epsilon")
    initializers = checks.dict_keys(param_initializers, PARAM_KEYS, "param_initializers")
    regularizers = checks.dict_keys(param_regularizers, PARAM_KEYS, "param_regularizers")
    checks.optional_callable(activation_fn, "activation_fn")
    checks.collections(variables_collections, PARAM_KEYS)
    return inputs, dtype, epsilon, initializers, regularizers


def dims(inputs):
    """The inputs' sizes: Python ints where static, scalar tensors elsewhere."""
    shape = None
    sizes = []
    for axis, size in enumerate(inputs.shape):
        if size is None:
            shape = tf.shape(inputs) if shape is None else shape
            sizes.append(shape[axis])
        else:
            sizes.append(int(size))
    return sizes


def _merge(sizes_roles):
    """Merges runs of axes with the same role: (view shape, roles string)."""
    view, roles = [], ""
    for size, role in sizes_roles:
        if roles and roles[-1] == role:
            view[-1] = view[-1] * size
        else:
            view.append(size)
            roles += role
    dynamic = [i for i, size in enumerate(view) if not isinstance(size, int)]
    if len(dynamic) == 1:
        view[dynamic[0]] = -1   # let reshape infer it: the rest stays static
    elif dynamic:
        view = tf.stack(view)
    return view, roles


def normalize(inputs, sizes_roles, params_shape, *, center, scale, epsilon, dtype,
              initializers, regularizers, variables_collections, trainable, output_name):
    """Creates beta/gamma of `params_shape` in the current scope and normalises.

    `sizes_roles` lists (size, role) for the inputs' axes in order, with the
    channel axis of group norm already split into (groups, 'g') and
    (channels per group, 'm'); sizes of 'g' and 'm' axes are Python ints and
    their product, in order, is the number of parameters.

    beta and gamma have the inputs' dtype, as slim's (a float16 checkpoint
    written by slim code restores); the arithmetic runs in `dtype`. The
    output op is named `output_name` within the layer's name scope (slim's
    name for it, which frozen-graph users select outputs by); everything
    else lives under a `normalize` name scope so that name is free.
    """
    def param(name, default):
        return variables.as_tensor(variables.parameter(
            name, list(params_shape), inputs.dtype.base_dtype, initializers, regularizers,
            variables_collections, trainable, default), dtype)

    beta = param("beta", variables.ZEROS) if center else None
    gamma = param("gamma", variables.ONES) if scale else None
    with tf.name_scope("normalize"):
        # The fused kernel where it applies (slimnorm.kernels), else TF ops.
        y = kernel_ops.fused_normalize(inputs, sizes_roles, gamma, beta, epsilon)
        if y is None:
            y = _normalize_with_tf_ops(inputs, sizes_roles, gamma, beta, epsilon, dtype)
        shape = inputs.shape.as_list() if inputs.shape.is_fully_defined() else tf.shape(inputs)
    scope, _, name = output_name.rpartition("/")
    if scope:
        with tf.name_scope(scope):
            y = tf.reshape(y, shape, name=name)
    else:
        y = tf.reshape(y, shape, name=name)
    y.set_shape(inputs.shape)
    return y


def _normalize_with_tf_ops(inputs, sizes_roles, gamma, beta, epsilon, dtype):
    """group_math's math on the merged view, in `dtype`; the inputs' dtype out."""
    view, roles = _merge(sizes_roles)
    # beta/gamma in the view: their sizes on the 'g'/'m' axes, 1 elsewhere.
    param_view, _ = _merge([(size if role in "gm" else 1, role) for size, role in sizes_roles])
    x = tf.reshape(tf.cast(inputs, dtype), view)
    y = group_math.normalize(
        x, roles,
        None if gamma is None else tf.reshape(gamma, param_view),
        None if beta is None else tf.reshape(beta, param_view),
        epsilon)
    return tf.cast(y, inputs.dtype)


def finish(outputs, activation_fn, outputs_collections, scope):
    """The activation, then slim's outputs collections under the layer's scope."""
    if activation_fn is not None:
        outputs = activation_fn(outputs)
    return slim.utils.collect_named_outputs(outputs_collections, scope.name, outputs)
