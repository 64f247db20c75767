"""instance_norm vs slimnorm.reference and tf-slim's own instance_norm; errors.

What the group-family layers share (variables, collections, dtypes,
arg_scope, large-mean inputs) is tested for all three in test_group_norm.
"""
import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import reference as ref
from tests.graph_utils import TOL, check_jacobian, random_params, rel_err, run_graph, run_layer

tf1 = tf.compat.v1


@pytest.mark.parametrize("shape", [(3, 7, 4), (3, 5, 4, 6), (2, 3, 4, 5, 6)])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16,
                                   tf.bfloat16.as_numpy_dtype])
def test_matches_reference(shape, data_format, dtype):
    x = np.random.default_rng(0).normal(3.0, 2.0, shape).astype(dtype)
    channels = shape[1] if data_format == "NCHW" else shape[-1]
    gamma, beta = random_params(channels)
    y = run_layer(slimnorm.instance_norm, x, gamma, beta, data_format=data_format)
    assert rel_err(y, ref.instance_norm(x, gamma, beta, data_format=data_format)) < TOL[dtype]


def test_nchw_equals_nhwc_transposed():
    x = np.random.default_rng(1).normal(size=(3, 4, 5, 8)).astype(np.float32)
    gamma, beta = random_params(8)
    nhwc = run_layer(slimnorm.instance_norm, x, gamma, beta)
    nchw = run_layer(slimnorm.instance_norm, np.moveaxis(x, -1, 1), gamma, beta,
                     data_format="NCHW")
    np.testing.assert_allclose(np.moveaxis(nhwc, -1, 1), nchw, rtol=0, atol=1e-5)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_same_output_as_tf_slim(data_format):
    x = np.random.default_rng(2).normal(2.0, 3.0, (3, 6, 5, 4)).astype(np.float32)
    ours = run_graph(lambda: slimnorm.instance_norm(tf.constant(x), data_format=data_format))
    theirs = run_graph(lambda: slim.instance_norm(tf.constant(x), data_format=data_format))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)


def test_unknown_batch_and_spatial_sizes_are_fed_at_run_time():
    x = np.random.default_rng(3).normal(size=(2, 6, 5, 3)).astype(np.float32)
    with tf.Graph().as_default():
        images = tf1.placeholder(tf.float32, [None, 6, None, 3])
        y = slimnorm.instance_norm(images)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y, {images: x})
    assert rel_err(out, ref.instance_norm(x)) < 1e-5


@pytest.mark.parametrize("shape, data_format", [
    ((2, 3, 2, 3), "NHWC"), ((2, 3, 2, 3), "NCHW"), ((2, 5, 2), "NHWC")])
def test_gradient_matches_numeric_jacobian(shape, data_format):
    x = np.random.default_rng(4).normal(1.0, 2.0, shape)
    gamma, beta = random_params(shape[1] if data_format == "NCHW" else shape[-1])
    inits = {"gamma": tf1.constant_initializer(gamma), "beta": tf1.constant_initializer(beta)}
    check_jacobian(lambda t: slimnorm.instance_norm(
        t, data_format=data_format, param_initializers=inits), x)


@pytest.mark.parametrize("inputs, kwargs, error, message", [
    (lambda: tf.ones([4, 8]), {}, ValueError, "rank 2 .*accepted ranks are 3 and more"),
    (lambda: tf.ones([2, 4, 4, 8]), {"data_format": "NDHWC"}, ValueError,
     "data_format has to be either NCHW or NHWC .*got 'NDHWC'"),
    (lambda: tf1.placeholder(tf.float32, [2, None, 4, 4]), {"data_format": "NCHW"},
     ValueError, "undefined channels dimension \\(axis 1"),
    (lambda: tf1.placeholder(tf.float32), {}, ValueError, "undefined rank"),
    (lambda: tf.ones([2, 4, 4, 8]), {"epsilon": -1}, ValueError, "epsilon must be a number >= 0, got -1"),
    (lambda: tf.ones([2, 4, 4, 8]), {"param_initializers": ["gamma"]}, TypeError,
     "param_initializers must be a dict"),
])
def test_errors_name_argument_value_and_what_is_accepted(inputs, kwargs, error, message):
    with tf.Graph().as_default():
        with pytest.raises(error, match=message):
            slimnorm.instance_norm(inputs(), **kwargs)
        assert not tf1.global_variables()
