"""Batch renormalization (Ioffe 2017) on top of the moments path.

In training the batch-normalised value x_hat is corrected to x_hat * r + d,
with r = sigma_B / sigma and d = (mu_B - mu) / sigma computed from moving
averages (mu, sigma) that are tracked *separately* from the inference
statistics, with their own decay (`renorm_decay`), and clipped to
[rmin, rmax] and [-dmax, dmax]. r and d carry no gradient. The effect is that
training and inference see the same normalisation once the averages settle,
which matters for small or non-i.i.d. batches.

Variables, as tf-slim's batch norm (its Keras-layer path, the only one with
renorm) created them after moving_mean and moving_variance, all
non-trainable model variables, created in eval graphs too (they restore
from the same checkpoint) and never put in `variables_collections`:
  moving_stddev: the inference statistics are tracked as a standard
    deviation, EMA(sqrt(var + eps)) with `decay`; moving_variance is then
    set to relu(moving_stddev^2 - eps) (the paper's sigma, Keras' choice);
  renorm_mean, renorm_stddev: the averages behind r and d, with
    `renorm_decay`, starting from the moving_mean initializer and the square
    root of the moving_variance initializer (as moving_stddev does).
"""

import tensorflow as tf

from slimnorm import checks, variables
from slimnorm.moving_averages import assign_moving_average

CLIPPING_KEYS = ("rmax", "rmin", "dmax")
VARIABLE_NAMES = ("moving_stddev", "renorm_mean", "renorm_stddev")


def check_clipping(renorm_clipping):
    """The clipping dict, checked: known keys, and bounds that admit r=1, d=0.

    r = 1 and d = 0 (no correction) is where training meets inference, so a
    bound that excludes it (rmax < 1, rmin > 1, dmax < 0) or contradicts
    another (rmin > rmax) can only make a model that never evaluates as it
    trained. Tensor values (schedules) are accepted as they are.
    """
    clipping = checks.dict_keys(renorm_clipping, CLIPPING_KEYS, "renorm_clipping")
    numbers_ = {key: value for key, value in clipping.items()
                if value is not None and not isinstance(value, (tf.Tensor, tf.Variable))}
    for key, value in numbers_.items():
        checks.non_negative(value, "renorm_clipping[%r]" % key)
    accepted = "accepted are 0 <= rmin <= 1 <= rmax and dmax >= 0"
    if numbers_.get("rmax", 1) < 1 or numbers_.get("rmin", 1) > 1:
        raise ValueError("renorm_clipping=%r leaves out r = 1, the value where training "
                         "matches inference; %s." % (renorm_clipping, accepted))
    if numbers_.get("rmin", 0) > numbers_.get("rmax", float("inf")):
        raise ValueError("renorm_clipping=%r has rmin > rmax; %s." % (renorm_clipping, accepted))
    return clipping


class SqrtOf:
    """An initializer: the square root of what `initializer` gives (moving_stddev's)."""

    def __init__(self, initializer):
        self.initializer = initializer

    def __call__(self, shape, dtype=None, **kwargs):
        return tf.sqrt(self.initializer(shape, dtype=dtype, **kwargs))


def create_variables(channels, dtype, initializers):
    """(moving_stddev, renorm_mean, renorm_stddev), in slim's order and initial values.

    `initializers` is the user's `param_initializers` dict: the renorm
    variables start where the moving statistics do.
    """
    mean_init = initializers.get("moving_mean", variables.ZEROS())
    stddev_init = SqrtOf(initializers.get("moving_variance", variables.ONES()))

    def make(name, init):
        return variables.parameter(
            name, [channels], dtype, {}, {}, None, trainable=False,
            default_initializer=lambda: init, partitioned=False)

    return (make("moving_stddev", stddev_init), make("renorm_mean", mean_init),
            make("renorm_stddev", stddev_init))


def correction(mean, variance, epsilon, renorm_mean, renorm_stddev, clipping):
    """Returns (r, d), clipped and without gradient.

    The renorm stddev is floored at sqrt(epsilon) (slim's layer: no division
    by zero early in training).
    """
    stddev = tf.sqrt(variance + epsilon)
    sigma = tf.maximum(tf.convert_to_tensor(renorm_stddev), tf.sqrt(tf.cast(epsilon, stddev.dtype)))
    r = stddev / sigma
    d = (mean - tf.convert_to_tensor(renorm_mean)) / sigma
    if clipping.get("rmin") is not None:
        r = tf.maximum(r, clipping["rmin"])
    if clipping.get("rmax") is not None:
        r = tf.minimum(r, clipping["rmax"])
    if clipping.get("dmax") is not None:
        d = tf.clip_by_value(d, -clipping["dmax"], clipping["dmax"])
    return tf.stop_gradient(r, name="renorm_r"), tf.stop_gradient(d, name="renorm_d")


def updates(renorm_mean, renorm_stddev, mean, variance, epsilon, renorm_decay):
    """Moving averages of the batch mean and stddev with `renorm_decay`."""
    return [
        assign_moving_average(renorm_mean, mean, renorm_decay, name="AssignRenormMean"),
        assign_moving_average(renorm_stddev, tf.sqrt(variance + epsilon), renorm_decay,
                              name="AssignRenormStddev"),
    ]


def variance_update(moving_variance, moving_stddev, variance, epsilon, decay):
    """moving_stddev <- EMA(sqrt(variance + eps)), then moving_variance <- relu(it^2 - eps).

    Returns the new moving variance (a tensor that runs both assignments).
    """
    stddev = assign_moving_average(moving_stddev, tf.sqrt(variance + epsilon), decay)
    with tf.compat.v1.name_scope(None, "AssignNewValue", [moving_variance]) as scope:
        new = tf.nn.relu(tf.square(stddev) - epsilon)
        assign = moving_variance.assign(tf.cast(new, moving_variance.dtype.base_dtype),
                                        read_value=False)
        with tf.control_dependencies([assign]):
            return tf.identity(moving_variance.read_value(), name=scope)


def clipping_schedule(global_step, *, warmup_steps=5000, dmax_steps=25000, rmax_steps=40000,
                      rmax=3.0, dmax=5.0):
    """The paper's renorm_clipping warm-up, as tensors of `global_step`.

    Ioffe (2017), section 4: plain batch norm (rmax = 1, dmax = 0) for the
    first `warmup_steps`, then rmax relaxed linearly to `rmax` at
    `rmax_steps` and dmax to `dmax` at `dmax_steps` (5k, 40k and 25k steps on
    ImageNet); rmin = 1 / rmax. Scale the steps to the length of a run.
    """
    checks.integer(warmup_steps, "warmup_steps", minimum=0)
    for name, steps in (("dmax_steps", dmax_steps), ("rmax_steps", rmax_steps)):
        if checks.integer(steps, name, minimum=0) <= warmup_steps:
            raise ValueError("%s=%d must be larger than warmup_steps=%d; the bound is relaxed "
                             "between the two." % (name, steps, warmup_steps))
    if checks.positive(rmax, "rmax") < 1:
        raise ValueError("rmax=%r must be >= 1 (r = 1 is plain batch norm)." % (rmax,))
    checks.non_negative(dmax, "dmax")
    step = tf.cast(global_step, tf.float32)

    def ramp(end_step):
        """0 until warmup_steps, then linearly to 1 at end_step."""
        return tf.clip_by_value((step - warmup_steps) / float(end_step - warmup_steps), 0.0, 1.0)

    r_max = 1.0 + (rmax - 1.0) * ramp(rmax_steps)
    return {"rmax": r_max, "rmin": 1.0 / r_max, "dmax": dmax * ramp(dmax_steps)}

