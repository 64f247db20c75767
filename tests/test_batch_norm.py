"""batch_norm numerics against slimnorm.reference (numpy) and TF's own kernels."""
import numpy as np
import pytest
import tensorflow as tf

import slimnorm
from slimnorm import reference as ref
from tests.graph_utils import after_updates, rel_err, run_graph

SHAPES = [(16, 3), (4, 5, 3), (4, 5, 6, 3), (2, 3, 4, 5, 3)]
TOL = {np.float32: 2e-5, np.float64: 1e-10, np.float16: 3e-3}


def _nchw(shape):
    """Same tensor with channels moved to axis 1 (rank >= 3)."""
    return (shape[0], shape[-1]) + tuple(shape[1:-1])


def _to_nchw(x):
    return np.moveaxis(x, -1, 1)


def _params(c, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2, c), rng.normal(0, 1, c), rng.normal(0, 1, c), rng.uniform(0.5, 2, c)


def _initializers(gamma, beta, mean, var):
    const = tf.compat.v1.constant_initializer
    return {"gamma": const(gamma), "beta": const(beta), "moving_mean": const(mean),
            "moving_variance": const(var)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_train_and_eval_match_reference(shape, data_format, fused, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, shape)
    if data_format == "NCHW" and len(shape) > 2:
        x = _to_nchw(x)
    x = x.astype(dtype)
    c = shape[-1]
    gamma, beta, mean, var = _params(c)
    for training in (True, False):
        y = run_graph(lambda: slimnorm.batch_norm(
            tf.constant(x), scale=True, is_training=training, fused=fused,
            data_format=data_format, param_initializers=_initializers(gamma, beta, mean, var)))
        assert y.dtype == dtype and y.shape == x.shape
        if training:
            expected = ref.batch_norm_train(x, gamma, beta, 1e-3, data_format)[0]
        else:
            expected = ref.batch_norm_inference(x, mean, var, gamma, beta, 1e-3, data_format)
        assert rel_err(y, expected) < TOL[dtype], (training, rel_err(y, expected))


@pytest.mark.parametrize("shape", [(4, 5, 6, 3), (2, 3, 4, 5, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_nchw_equals_nhwc_transposed(shape, training):
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    y_nhwc = run_graph(lambda: slimnorm.batch_norm(tf.constant(x), is_training=training,
                                                    param_initializers={"moving_variance": tf.compat.v1.constant_initializer(2.0)}))
    y_nchw = run_graph(lambda: slimnorm.batch_norm(tf.constant(_to_nchw(x)), is_training=training,
                                                    data_format="NCHW",
                                                    param_initializers={"moving_variance": tf.compat.v1.constant_initializer(2.0)}))
    np.testing.assert_allclose(_to_nchw(y_nhwc), y_nchw, atol=2e-5)


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_large_mean_inputs(fused, data_format):
    x = (1e4 + np.random.default_rng(3).normal(size=(8, 6, 6, 16))).astype(np.float32)
    if data_format == "NCHW":
        x = _to_nchw(x)
    y = run_graph(lambda: slimnorm.batch_norm(tf.constant(x), fused=fused, data_format=data_format))
    expected = ref.batch_norm_train(x, epsilon=1e-3, data_format=data_format)[0]
    if fused is False:
        # The moments path shifts before reducing, so its statistics are exact;
        # the output subtracts the batch mean as a float32 number, the same
        # arithmetic inference does with the moving mean (so that training and
        # inference agree once it has converged). Exact up to that rounding:
        axes = (0, 2, 3) if data_format == "NCHW" else (0, 1, 2)
        x64 = x.astype(np.float64)
        mean32 = x64.mean(axis=axes, keepdims=True).astype(np.float32).astype(np.float64)
        rounded = (x64 - mean32) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-3)
        assert rel_err(y, rounded) < 1e-5
        # ... which is the float32 spacing at 1e4 (about 1e-3) at most.
        assert rel_err(y, expected) < 3e-4
    else:
        # TF's fused kernel reduces the raw values; its float32 mean is off by
        # about the float32 spacing at 1e4 (1e-3), which shows in x - mean.
        assert rel_err(y, expected) < 3e-3


@pytest.mark.parametrize("shape", [(16, 4), (4, 3, 3, 4)])
@pytest.mark.parametrize("estimator", ["slim", "unbiased", "biased"])
def test_moving_variance_estimator(shape, estimator):
    """The fused kernel's variance is unbiased, tf.nn.moments' biased (TF issue 55545)."""
    x = np.random.default_rng(4).normal(1, 2, shape).astype(np.float32)  # the kernel's dtype
    n = np.prod(shape[:-1])
    _, _, biased = ref.batch_norm_train(x)
    stored = {}
    for fused in (True, False):
        def build_and_update():
            slimnorm.batch_norm(tf.constant(x), decay=0.0, fused=fused,
                                moving_variance_estimator=estimator)
            return after_updates("moving_variance")

        stored[fused] = run_graph(build_and_update)
    unbiased = ref.unbiased_variance(biased, n)
    expected = {"slim": {True: unbiased, False: biased},
                "unbiased": {True: unbiased, False: unbiased},
                "biased": {True: biased, False: biased}}[estimator]
    for fused in (True, False):
        np.testing.assert_allclose(stored[fused], expected[fused], rtol=1e-5)


@pytest.mark.parametrize("shape,data_format", [((3, 4, 4, 2), "NHWC"), ((3, 2, 4), "NCHW"),
                                               ((6, 3), "NHWC")])
def test_gradients_moments_path(shape, data_format):
    x = np.random.default_rng(5).normal(size=shape)
    with tf.Graph().as_default():
        xt = tf.constant(x)
        y = slimnorm.batch_norm(xt, scale=True, fused=False, data_format=data_format)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            err = tf.compat.v1.test.compute_gradient_error(xt, shape, y, shape, x_init_value=x)
    assert err < 1e-6


def test_fused_gradient_equals_moments_gradient():
    """The fused kernel's hand-written gradient vs autodiff through tf.nn.moments."""
    x = np.random.default_rng(6).normal(size=(4, 5, 5, 3)).astype(np.float64)
    w = np.random.default_rng(7).normal(size=x.shape)

    def grads(fused):
        def build():
            xt = tf.constant(x, tf.float32)
            y = slimnorm.batch_norm(xt, scale=True, fused=fused)
            loss = tf.reduce_sum(y * tf.constant(w, tf.float32))
            return tf.gradients(loss, [xt] + tf.compat.v1.trainable_variables())
        return run_graph(build)

    for a, b in zip(grads(None), grads(False)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_batch_weights_match_weighted_reference():
    x = np.random.default_rng(8).normal(size=(6, 4, 3))
    weights = np.array([1.0, 2.0, 0.5, 0.0, 1.0, 3.0])
    y = run_graph(lambda: slimnorm.batch_norm(tf.constant(x), batch_weights=weights, scale=True))
    expected = ref.batch_norm_train(x, np.ones(3), np.zeros(3), 1e-3, batch_weights=weights)[0]
    assert rel_err(y, expected) < 1e-10


def test_adjustment_applies_in_training_only():
    x = np.random.default_rng(9).normal(size=(5, 4, 4, 3))
    adj_scale, adj_bias = np.array([1.1, 0.9, 1.0]), np.array([0.1, -0.2, 0.3])
    gamma, beta, mean, var = _params(3)

    def build(training):
        return lambda: slimnorm.batch_norm(
            tf.constant(x), scale=True, is_training=training,
            param_initializers=_initializers(gamma, beta, mean, var),
            adjustment=lambda shape: (tf.constant(adj_scale), tf.constant(adj_bias)))

    x_hat = ref.batch_norm_train(x, epsilon=1e-3)[0]
    expected = (x_hat * adj_scale + adj_bias) * gamma + beta
    assert rel_err(run_graph(build(True)), expected) < 1e-10
    expected_eval = ref.batch_norm_inference(x, mean, var, gamma, beta, 1e-3)
    assert rel_err(run_graph(build(False)), expected_eval) < 1e-10


@pytest.mark.parametrize("clipping", [None, {"rmax": 1.2, "rmin": 0.8, "dmax": 0.1}])
def test_batch_renorm_matches_reference(clipping):
    rng = np.random.default_rng(10)
    x = rng.normal(2, 3, size=(8, 3, 3, 4))
    gamma, beta, _, _ = _params(4)
    mu, sigma = rng.normal(0, 1, 4), rng.uniform(1, 4, 4)
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.constant(x), scale=True, renorm=True, renorm_clipping=clipping,
                                renorm_decay=0.9, param_initializers=_initializers(gamma, beta, 0, 1))
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        by_name = {v.op.name: v for v in tf.compat.v1.global_variables()}
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            by_name["BatchNorm/renorm_mean"].load(mu, sess)
            by_name["BatchNorm/renorm_stddev"].load(sigma, sess)
            y_val = sess.run(y)
            sess.run(updates)
            new_mu, new_sigma = sess.run([by_name["BatchNorm/renorm_mean"],
                                          by_name["BatchNorm/renorm_stddev"]])
    clip = clipping or {}
    expected, mean_b, _, std_b, _, _ = ref.batch_renorm_train(
        x, mu, sigma, gamma, beta, 1e-3, clip.get("rmin"), clip.get("rmax"), clip.get("dmax"))
    assert rel_err(y_val, expected) < 1e-10
    assert len(updates) == 2
    np.testing.assert_allclose(new_mu, ref.moving_average(mu, mean_b, 0.9), rtol=1e-10)
    np.testing.assert_allclose(new_sigma, ref.moving_average(sigma, std_b, 0.9), rtol=1e-10)


def test_renorm_gradient_is_bn_gradient_times_r():
    """r and d carry no gradient (Ioffe 2017), so d(x_hat * r + d)/dx = r * d(x_hat)/dx."""
    rng = np.random.default_rng(11)
    x = rng.normal(1, 2, size=(4, 3, 3, 2))
    w = rng.normal(size=x.shape)
    sigma = np.array([0.5, 4.0])

    def grad(renorm):
        with tf.Graph().as_default():
            xt = tf.constant(x)
            y = slimnorm.batch_norm(xt, renorm=renorm)
            g = tf.gradients(tf.reduce_sum(y * w), xt)[0]
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                if renorm:
                    [v for v in tf.compat.v1.global_variables()
                     if v.op.name.endswith("renorm_stddev")][0].load(sigma, sess)
                return sess.run(g)

    r = ref.batch_renorm_train(x, np.zeros(2), sigma, epsilon=1e-3)[4]
    np.testing.assert_allclose(grad(True), grad(False) * r, rtol=1e-9, atol=1e-12)
    assert not np.allclose(r, 1.0)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
@pytest.mark.parametrize("fused", [None, False])
def test_half_precision_statistics_in_float32(dtype, fused):
    x = np.random.default_rng(12).normal(5, 2, size=(8, 4, 4, 3)).astype(np.float32)
    with tf.Graph().as_default():
        xt = tf.cast(tf.constant(x), dtype)
        y = slimnorm.batch_norm(xt, fused=fused)
        assert y.dtype == dtype
        assert all(v.dtype.base_dtype == tf.float32 for v in tf.compat.v1.global_variables())
        update = after_updates("moving_mean")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            y_val, mm = sess.run([tf.cast(y, tf.float32), update])
            x_half = sess.run(tf.cast(xt, tf.float32))
    _, mean, _ = ref.batch_norm_train(x_half)
    np.testing.assert_allclose(mm, 0.001 * mean, rtol=1e-5)  # float32 statistics
    tol = 2e-3 if dtype == tf.float16 else 2e-2
    assert rel_err(y_val, ref.batch_norm_train(x_half)[0]) < tol
