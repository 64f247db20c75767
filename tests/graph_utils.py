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
