"""Batch renormalization (Ioffe 2017) on top of the moments path.

In training the batch-normalised value x_hat is corrected to x_hat * r + d,
with r = sigma_B / sigma and d = (mu_B - mu) / sigma computed from moving
averages (mu, sigma) that are tracked *separately* from the inference
statistics, with their own decay (`renorm_decay`), and clipped to
[rmin, rmax] and [-dmax, dmax]. r and d carry no gradient. The effect is that
training and inference see the same normalisation once the averages settle,
which matters for small or non-i.i.d. batches.

Variables (as tf-slim/Keras named them): `renorm_mean` (init 0) and
`renorm_stddev` (init 1), both non-trainable model variables.
"""

import tensorflow as tf

from slimnorm import variables
from slimnorm.moving_averages import assign_moving_average

CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def create_variables(channels, dtype, variables_collections):
    def make(name, init):
        return variables.parameter(
            name, [channels], dtype, {}, {}, variables_collections, trainable=False,
            default_initializer=init, partitioned=False)

    return make("renorm_mean", variables.ZEROS), make("renorm_stddev", variables.ONES)


def correction(mean, variance, epsilon, renorm_mean, renorm_stddev, clipping):
    """Returns (r, d), clipped and without gradient."""
    stddev = tf.sqrt(variance + epsilon)
    sigma = tf.convert_to_tensor(renorm_stddev)
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
