"""Argument validation shared by every normalizer.

All checks run at graph-build time, before any variable exists, and every
error names the argument, the value received and what is accepted (the
Sonnet v1 rule): a wrong graph must never be built silently.

TensorFlow is imported inside the checks that look at tensors, so that the
command line can validate its flags with these same functions before
TensorFlow loads.
"""

import numbers

import numpy as np

DATA_FORMATS = ("NHWC", "NCHW")


def data_format(value, arg="data_format"):
    """Returns `value` if it is 'NHWC' or 'NCHW', else raises ValueError."""
    if value not in DATA_FORMATS:
        raise ValueError("%s has to be either NCHW or NHWC (channels on axis 1 or last), "
                         "got %r." % (arg, value))
    return value


def rank(inputs, accepted=None, arg="inputs", why=""):
    """Static rank of `inputs`; ValueError if unknown or not in `accepted`."""
    ndims = inputs.shape.rank
    if ndims is None:
        raise ValueError(
            "%s %s has undefined rank: its rank is unknown when the graph is built, and "
            "a static rank is needed to choose the normalisation axes (set the shape, "
            "e.g. with set_shape)." % (arg, inputs.name))
    if accepted is not None and ndims not in accepted:
        raise ValueError("%s %s has rank %d (shape %s); %saccepted ranks are %s." % (
            arg, inputs.name, ndims, inputs.shape, why, tuple(accepted)))
    return ndims


def axis_dim(inputs, axis, arg="inputs", what="channels"):
    """Static size of `inputs` along `axis`; ValueError if it is unknown."""
    size = inputs.shape[axis]
    if size is None:
        raise ValueError(
            "%s %s has undefined %s dimension (axis %d of shape %s): it is unknown "
            "when the graph is built, and parameter shapes depend on it." % (
                arg, inputs.name, what, axis, inputs.shape))
    return int(size)


def positive(value, arg):
    """Python number > 0, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError("%s must be a number > 0, got %r." % (arg, value))
    return float(value)


def non_negative(value, arg):
    """Python number >= 0 (epsilon), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError("%s must be a number >= 0, got %r." % (arg, value))
    return float(value)


def unit_interval(value, arg):
    """A Python number must lie in [0, 1]; tensors are accepted unchecked."""
    import tensorflow as tf
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError("%s must be a number in [0, 1], got %r." % (arg, value))
    return value


def one_of(value, accepted, arg):
    if value not in accepted:
        raise ValueError("%s must be one of %s, got %r." % (arg, tuple(accepted), value))
    return value


def dict_keys(value, accepted, arg):
    """`value` must be None or a dict whose keys are all in `accepted`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("%s must be a dict with keys from %s, got %r." % (
            arg, tuple(accepted), value))
    unknown = sorted(set(value) - set(accepted))
    if unknown:
        raise ValueError("%s has unknown keys %s; accepted keys are %s." % (
            arg, unknown, tuple(accepted)))
    return value


def training_flag(is_training, arg="is_training"):
    """Returns a Python bool, or a scalar bool Tensor when not known statically.

    A bool tensor with a constant value (tf.constant(True)) is folded to a
    Python bool so only one branch is built; a placeholder or variable stays a
    tensor and the caller builds tf.cond branches. Anything else is an error:
    a float or int tensor would silently compare against zero.
    """
    import tensorflow as tf
    if isinstance(is_training, (bool, np.bool_)):
        return bool(is_training)
    if isinstance(is_training, (tf.Tensor, tf.Variable)):
        if is_training.dtype.base_dtype != tf.bool:
            raise TypeError(
                "%s must be a Python bool or a bool tensor, got a tensor of dtype "
                "%s (%r)." % (arg, is_training.dtype.name, is_training))
        if is_training.shape.rank not in (None, 0):
            raise ValueError("%s must be a scalar bool tensor, got shape %s." % (
                arg, is_training.shape))
        if isinstance(is_training, tf.Tensor):
            static = tf.get_static_value(is_training)
            if static is not None:
                return bool(static)
        return is_training
    raise TypeError("%s must be a Python bool or a scalar bool tensor, got %r "
                    "of type %s." % (arg, is_training, type(is_training).__name__))


def param_dtype(inputs, arg="inputs"):
    """Dtype of parameters and statistics: float32 for half-precision inputs."""
    import tensorflow as tf
    dtype = inputs.dtype.base_dtype
    if not dtype.is_floating:
        raise TypeError("%s must be a floating-point tensor, got dtype %s." % (
            arg, dtype.name))
    if dtype in (tf.float16, tf.bfloat16):
        return tf.float32
    return dtype


def integer(value, arg, minimum=None):
    """A Python/numpy integer (not a bool) >= `minimum`, returned as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError("%s must be an integer, got %r of type %s." % (
            arg, value, type(value).__name__))
    if minimum is not None and value < minimum:
        raise ValueError("%s must be an integer >= %d, got %r." % (arg, minimum, value))
    return int(value)


def axis(value, ndims, arg):
    """An axis index of a rank-`ndims` tensor in [-ndims, ndims), made >= 0."""
    value = integer(value, arg)
    if not -ndims <= value < ndims:
        raise ValueError("Axis is out of bounds: %s=%d for inputs of rank %d (an axis must "
                         "be < rank(inputs)); accepted are %d to %d." % (
                             arg, value, ndims, -ndims, ndims - 1))
    return value % ndims


def boolean(value, arg):
    """A Python bool (or numpy bool), returned as bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError("%s must be True or False, got %r of type %s." % (
            arg, value, type(value).__name__))
    return bool(value)


def optional_callable(value, arg, what="a callable such as tf.nn.relu"):
    """None or a callable, e.g. activation_fn=tf.nn.relu."""
    if value is not None and not callable(value):
        raise TypeError("%s must be None or %s, got %r." % (arg, what, value))
    return value


def collections(value, names, arg="variables_collections"):
    """None, a list of collection names, or a dict keyed by variable names.

    slim's rule: a dict gives each variable its own collections. A key that
    names none of the layer's variables is a typo that would silently leave
    a variable out of the collection the user meant, so it is refused (keys
    of variables that this configuration does not create, e.g. 'gamma' with
    scale=False, are accepted: one dict serves a whole arg_scope).
    """
    if isinstance(value, dict):
        dict_keys(value, names, arg)
    elif value is not None and (isinstance(value, str) or not isinstance(value, (list, tuple))):
        raise TypeError("%s must be None, a list of collection names or a dict keyed by "
                        "%s, got %r." % (arg, tuple(names), value))
    return value


def at_least(value, minimum, arg):
    """A Python number (not a bool) >= `minimum`, returned unchanged."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or (
            not value >= minimum):
        raise ValueError("%s must be a number >= %s, got %r." % (arg, minimum, value))
    return value


def optional_fraction(value, arg):
    """None, or a Python number strictly between 0 and 1 (a decay rate)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or (
            not 0 < value < 1):
        raise ValueError("%s must be None or a number in (0, 1), got %r." % (arg, value))
    return value


def optional_integer(value, arg, minimum=None):
    """None, or what `integer` accepts."""
    return None if value is None else integer(value, arg, minimum)


def int_sequence(value, arg, minimum=1):
    """A non-empty list or tuple of integers >= `minimum`, returned as a tuple."""
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
            and v >= minimum for v in value):
        raise ValueError("%s must be a non-empty list of integers >= %d, got %r." % (
            arg, minimum, value))
    return tuple(int(v) for v in value)
