"""Small helpers for graph-mode tests: build in a fresh graph, run once."""
import numpy as np
import tensorflow as tf


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
    import tf_slim as slim
    variable = slim.get_variables_by_name(variable_name)[0]
    with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
        return tf.identity(variable.read_value())
