"""Exponential moving averages of batch statistics.

Semantics and names follow `tf.compat.v1.train`'s assign_moving_average, which
slim used: the update `v -= (v - value) * (1 - decay)` is an op named
`AssignMovingAvg` (then `AssignMovingAvg_1`, ...) in the current name scope.
Zero-debiasing (Kingma & Ba 2015) keeps two extra non-trainable variables,
`<var>/biased` and `<var>/local_step`, created in a variable scope named after
the variable *inside* the current scope, which is where TensorFlow put them
and therefore where existing checkpoints have them.

The debias variables are created by `zero_debias_variables` separately from
the update, so that a caller can create them outside a tf.cond branch and
run the update inside it.
"""

import tensorflow as tf
import tf_slim as slim


def zero_debias_variables(variable, model_variables=False):
    """Creates (or reuses) the `biased` and `local_step` variables of `variable`.

    `model_variables=True` also puts them in MODEL_VARIABLES, as tf-slim's
    legacy batch-norm path did through its scope's custom getter.
    """
    create = slim.model_variable if model_variables else tf.compat.v1.get_variable
    with tf.compat.v1.variable_scope(variable.op.name):
        biased = create(
            "biased", shape=variable.shape, dtype=variable.dtype.base_dtype,
            initializer=tf.compat.v1.zeros_initializer(), trainable=False)
        local_step = create(
            "local_step", shape=[], dtype=variable.dtype.base_dtype,
            initializer=tf.compat.v1.zeros_initializer(), trainable=False)
    return biased, local_step


def _assign_sub(variable, delta):
    """Assigns in place and returns the op, for resource and ref variables."""
    return variable.assign_sub(delta, read_value=False)


def assign_moving_average(variable, value, decay, debias=None, name=None):
    """Moves `variable` towards `value`; returns the new value as a tensor.

    Args:
      variable: the moving-average variable.
      value: tensor of the variable's shape (cast to its dtype).
      decay: float or scalar tensor; the weight kept by the old average.
      debias: None, or the (biased, local_step) pair of
        `zero_debias_variables(variable)`: the variable then holds
        biased / (1 - decay ** step), exact from the first step on.
      name: name of the returned tensor (default 'AssignMovingAvg').

    Returns:
      A tensor named `<name scope>/AssignMovingAvg`, evaluating to the new
      average, that runs the update when evaluated.
    """
    with tf.compat.v1.name_scope(name, "AssignMovingAvg", [variable, value, decay]) as scope:
        dtype = variable.dtype.base_dtype
        value = tf.cast(value, dtype)
        # 1 - decay in Python double when decay is a number: 1 - 0.999 rounded
        # in float32 is off by 5e-5 relative, a visible bias in the average.
        if isinstance(decay, (tf.Tensor, tf.Variable)):
            one_minus_decay = 1.0 - tf.cast(decay, dtype)
        else:
            one_minus_decay = tf.constant(1.0 - decay, dtype)
        if debias is None:
            update = _assign_sub(variable, (tf.convert_to_tensor(variable) - value) * one_minus_decay)
        else:
            biased, local_step = debias
            new_biased = biased.assign_sub(
                (tf.convert_to_tensor(biased) - value) * one_minus_decay)
            new_step = local_step.assign_add(tf.ones([], dtype))
            bias_factor = 1.0 - tf.pow(1.0 - one_minus_decay, new_step)
            update = variable.assign(new_biased / bias_factor, read_value=False)
        with tf.control_dependencies([update]):
            # read_value() makes a fresh read under the control dependency (a
            # ref variable's cached snapshot could be read before the update).
            return tf.identity(variable.read_value(), name=scope)
