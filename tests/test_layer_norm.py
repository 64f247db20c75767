"""layer_norm vs slimnorm.reference and tf-slim's own layer_norm; errors.

What the group-family layers share (variables, collections, dtypes,
arg_scope, large-mean inputs) is tested for all three in test_group_norm.
"""
import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import reference as ref
from tests.graph_utils import TOL, check_jacobian, rel_err, run_graph, run_layer

tf1 = tf.compat.v1


@pytest.mark.parametrize("shape, begin_norm_axis, begin_params_axis", [
    ((3, 5, 4, 6), 1, -1),    # slim's default: per sample over H, W, C
    ((6, 10), 1, -1),
    ((3, 5, 4, 6), -1, -1),   # over the channels only
    ((3, 5, 4, 6), 1, 1),     # parameters over H, W, C
    ((4, 3, 7), 2, 1),        # parameters also along an axis with separate statistics
    ((3, 5, 4, 6), 2, 3),
    ((3, 5, 4, 6), 0, -1),    # statistics over the whole batch
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16,
                                   tf.bfloat16.as_numpy_dtype])
def test_matches_reference(shape, begin_norm_axis, begin_params_axis, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, shape).astype(dtype)
    params_shape = shape[begin_params_axis:]
    gamma, beta = rng.uniform(0.5, 2.0, params_shape), rng.normal(0.0, 1.0, params_shape)
    y = run_layer(slimnorm.layer_norm, x, gamma, beta, begin_norm_axis=begin_norm_axis,
                  begin_params_axis=begin_params_axis)
    expected = ref.layer_norm(x, gamma, beta, begin_norm_axis=begin_norm_axis,
                              begin_params_axis=begin_params_axis)
    assert rel_err(y, expected) < TOL[dtype]


@pytest.mark.parametrize("begin_norm_axis, begin_params_axis", [(1, -1), (2, 1), (-1, -1)])
def test_same_output_as_tf_slim(begin_norm_axis, begin_params_axis):
    x = np.random.default_rng(1).normal(size=(3, 5, 4, 6)).astype(np.float32)
    ours = run_graph(lambda: slimnorm.layer_norm(
        tf.constant(x), begin_norm_axis=begin_norm_axis, begin_params_axis=begin_params_axis))
    theirs = run_graph(lambda: slim.layer_norm(
        tf.constant(x), begin_norm_axis=begin_norm_axis, begin_params_axis=begin_params_axis))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)


def test_epsilon_is_an_argument():
    x = np.random.default_rng(2).normal(size=(4, 6)).astype(np.float32)
    y = run_layer(slimnorm.layer_norm, x, epsilon=0.5)
    assert rel_err(y, ref.layer_norm(x, epsilon=0.5)) < 1e-5
    assert rel_err(y, ref.layer_norm(x)) > 1e-2
    # The default 1e-12 leaves a constant row at exactly beta, without NaNs.
    constant = run_layer(slimnorm.layer_norm, np.full((2, 6), 7.0, np.float32),
                         beta=np.arange(6.0))
    np.testing.assert_array_equal(constant, np.tile(np.arange(6.0), (2, 1)))


def test_unknown_sizes_inside_the_statistics_are_fed_at_run_time():
    x = np.random.default_rng(3).normal(size=(2, 7, 5)).astype(np.float32)
    with tf.Graph().as_default():
        inputs = tf1.placeholder(tf.float32, [None, None, 5])
        y = slimnorm.layer_norm(inputs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y, {inputs: x})
    assert rel_err(out, ref.layer_norm(x)) < 1e-5


@pytest.mark.parametrize("shape, begin_norm_axis, begin_params_axis", [
    ((2, 3, 2, 4), 1, -1), ((3, 4), 1, -1), ((2, 3, 4), 2, 1)])
def test_gradient_matches_numeric_jacobian(shape, begin_norm_axis, begin_params_axis):
    rng = np.random.default_rng(4)
    x = rng.normal(1.0, 2.0, shape)
    gamma = rng.uniform(0.5, 2.0, shape[begin_params_axis:])
    inits = {"gamma": tf1.constant_initializer(gamma)}
    check_jacobian(lambda t: slimnorm.layer_norm(
        t, begin_norm_axis=begin_norm_axis, begin_params_axis=begin_params_axis,
        param_initializers=inits), x)


@pytest.mark.parametrize("inputs, kwargs, error, message", [
    (lambda: tf.ones([2, 4]), {"begin_norm_axis": 2}, ValueError,
     "Axis is out of bounds: begin_norm_axis=2 for inputs of rank 2 \\(an axis must be < rank\\(inputs\\)\\); accepted are -2 to 1"),
    (lambda: tf.ones([2, 4]), {"begin_params_axis": -3}, ValueError,
     "Axis is out of bounds: begin_params_axis=-3"),
    (lambda: tf.ones([2, 4]), {"begin_norm_axis": 1.0}, TypeError,
     "begin_norm_axis must be an integer"),
    (lambda: tf1.placeholder(tf.float32, [2, None]), {}, ValueError,
     "shape\\(inputs\\)\\[1:\\] = \\(None,\\) is not fully defined"),
    (lambda: tf1.placeholder(tf.float32), {}, ValueError, "undefined rank"),
    (lambda: tf.ones([2, 4]), {"epsilon": -1e-3}, ValueError, "epsilon must be a number >= 0, got -0.001"),
    (lambda: tf.ones([2, 4]), {"param_initializers": {"moving_variance": None}},
     ValueError, "accepted keys are \\('beta', 'gamma'\\)"),
])
def test_errors_name_argument_value_and_what_is_accepted(inputs, kwargs, error, message):
    with tf.Graph().as_default():
        with pytest.raises(error, match=message):
            slimnorm.layer_norm(inputs(), **kwargs)
        assert not tf1.global_variables()
