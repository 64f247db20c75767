"""Helpers shared by the layer tests: build in a fresh graph, run, compare, check gradients."""
import numpy as np
import tensorflow as tf
import tf_slim as slim

tf1 = tf.compat.v1
# Relative to the output's scale: float32 round-off, float16/bfloat16 output rounding.
TOL = {np.float64: 1e-12, np.float32: 1e-5, np.float16: 2e-3, tf.bfloat16.as_numpy_dtype: 1.6e-2}


def run_graph(build, feed=None, steps=1):
    """Calls build() in a fresh graph; runs its fetches `steps` times; returns the last."""
    with tf.Graph().as_default():
        fetches = build()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for _ in range(steps):
                out = sess.run(fetches, feed)
    return out


def rel_err(actual, expected):
    """Max abs error relative to the scale of the expected values."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12)


def after_updates(variable_name):
    """The variable named `*/variable_name`, read after every UPDATE_OPS entry ran.

    slim's default path collects update operations, whose run returns None,
    so tests read the moving averages themselves.
    """
    variable = slim.get_variables_by_name(variable_name)[0]
    with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
        return tf.identity(variable.read_value())


def random_params(channels, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, channels), rng.normal(0.0, 1.0, channels)


def run_layer(layer, x, gamma=None, beta=None, dtype=None, **kwargs):
    """Output of layer(x) with gamma/beta initialised to the given arrays."""
    const = tf1.constant_initializer
    inits = {name: const(value) for name, value in (("gamma", gamma), ("beta", beta))
             if value is not None}
    x = x.astype(dtype) if dtype is not None else x
    out = run_graph(lambda: layer(tf.constant(x), param_initializers=inits, **kwargs))
    return np.asarray(out, np.float64)


def check_jacobian(build, x_value):
    """compute_gradient's analytic vs numeric d build(x) / dx, float64."""
    with tf.Graph().as_default(), tf1.Session() as sess:
        x = tf.constant(x_value)
        y = build(x)
        sess.run(tf1.global_variables_initializer())
        analytic, numeric = tf1.test.compute_gradient(
            x, x_value.shape, y, y.shape.as_list(), x_init_value=x_value, delta=1e-5)
    assert np.abs(analytic).max() > 1e-3  # a zero Jacobian would match trivially
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)
