"""Ghost batch norm (`virtual_batch_size`) against the numpy reference."""
import numpy as np
import pytest
import tensorflow as tf

import slimnorm
from slimnorm import reference as ref
from tests.graph_utils import after_updates, check_jacobian, rel_err, run_graph

tf1 = tf.compat.v1


def _to_nchw(x):
    return np.moveaxis(x, -1, 1)


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("shape,data_format", [((12, 3, 3, 4), "NHWC"), ((12, 4, 3, 3), "NCHW"),
                                               ((12, 5), "NHWC"), ((12, 3, 4), "NHWC")])
def test_outputs_and_moving_averages_match_the_reference(fused, shape, data_format):
    x = np.random.default_rng(0).normal(2, 3, size=shape).astype(np.float32)
    gamma = np.linspace(0.5, 2, shape[1 if data_format == "NCHW" else -1])
    beta = -gamma

    def build():
        init = {"gamma": tf1.constant_initializer(gamma), "beta": tf1.constant_initializer(beta)}
        y = slimnorm.batch_norm(tf.constant(x), scale=True, fused=fused, decay=0.0,
                                data_format=data_format, virtual_batch_size=4,
                                param_initializers=init, moving_variance_estimator="biased")
        return y, after_updates("moving_mean"), after_updates("moving_variance")

    y, moving_mean, moving_variance = run_graph(build)
    expected, means, variances = ref.ghost_batch_norm_train(x, 4, gamma, beta,
                                                            data_format=data_format)
    assert rel_err(y, expected) < 1e-5
    np.testing.assert_allclose(moving_mean, means.mean(0), rtol=1e-5)
    np.testing.assert_allclose(moving_variance, variances.mean(0), rtol=1e-5)


@pytest.mark.parametrize("fused,unbiased", [(None, True), (False, False)])
def test_slim_estimator_keeps_each_paths_variance(fused, unbiased):
    """As plain batch norm: the fused kernel's per-batch variance is unbiased."""
    x = np.random.default_rng(1).normal(size=(8, 2, 2, 3)).astype(np.float32)
    variance = run_graph(lambda: (slimnorm.batch_norm(tf.constant(x), fused=fused, decay=0.0,
                                                      virtual_batch_size=2),
                                  after_updates("moving_variance"))[1])
    _, _, variances = ref.ghost_batch_norm_train(x, 2)
    n = 2 * 2 * 2
    expected = ref.unbiased_variance(variances, n) if unbiased else variances
    np.testing.assert_allclose(variance, expected.mean(0), rtol=1e-5)


def test_whole_batch_as_one_virtual_batch_is_batch_norm():
    x = np.random.default_rng(2).normal(size=(6, 3, 3, 2)).astype(np.float32)
    ghost = run_graph(lambda: slimnorm.batch_norm(tf.constant(x), virtual_batch_size=6))
    plain = run_graph(lambda: slimnorm.batch_norm(tf.constant(x)))
    np.testing.assert_allclose(ghost, plain, atol=1e-6)


def test_dynamic_batch_size():
    x = np.random.default_rng(3).normal(size=(9, 2, 2, 3)).astype(np.float32)
    with tf.Graph().as_default():
        inputs = tf1.placeholder(tf.float32, [None, 2, 2, 3])
        y = slimnorm.batch_norm(inputs, virtual_batch_size=3)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y, {inputs: x})
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="virtual_batch_size=3 does not divide the batch size"):
                sess.run(y, {inputs: x[:8]})
    assert rel_err(out, ref.ghost_batch_norm_train(x, 3)[0]) < 1e-5


def test_eval_mode_ignores_the_virtual_batches():
    x = np.random.default_rng(4).normal(size=(4, 3)).astype(np.float32)
    y = run_graph(lambda: slimnorm.batch_norm(tf.constant(x), is_training=False,
                                              virtual_batch_size=2))
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-3), rtol=1e-6)


@pytest.mark.parametrize("shape,data_format", [((4, 2, 3), "NHWC"), ((4, 3, 2, 2), "NCHW")])
def test_gradient_is_the_numeric_jacobian(shape, data_format):
    x = np.random.default_rng(5).normal(size=shape)
    check_jacobian(lambda t: slimnorm.batch_norm(t, scale=True, fused=False, virtual_batch_size=2,
                                                 data_format=data_format) * tf.constant(
        np.random.default_rng(6).normal(size=shape)), x)


def test_fused_and_moments_gradients_agree():
    x = np.random.default_rng(7).normal(size=(8, 3, 3, 4)).astype(np.float32)
    weights = np.random.default_rng(8).normal(size=x.shape).astype(np.float32)

    def gradients(fused):
        def build():
            xt = tf.constant(x)
            y = slimnorm.batch_norm(xt, scale=True, fused=fused, virtual_batch_size=4)
            loss = tf.reduce_sum(y * weights)
            return tf.gradients(loss, [xt] + tf1.trainable_variables())
        return run_graph(build)

    for fused_grad, moments_grad in zip(gradients(None), gradients(False)):
        assert rel_err(fused_grad, moments_grad) < 1e-4


@pytest.mark.parametrize("kwargs,error,message", [
    ({"virtual_batch_size": 5}, ValueError,
     "virtual_batch_size=5 does not divide the batch size 8 .*accepted are the divisors of 8"),
    ({"virtual_batch_size": 0}, ValueError, "virtual_batch_size must be an integer >= 1, got 0"),
    ({"virtual_batch_size": 2.0}, TypeError, "virtual_batch_size must be an integer"),
    ({"virtual_batch_size": 2, "renorm": True}, ValueError, "cannot be combined with renorm"),
])
def test_bad_virtual_batch_sizes_are_refused(kwargs, error, message):
    with tf.Graph().as_default(), pytest.raises(error, match=message):
        slimnorm.batch_norm(tf.zeros([8, 2, 2, 3]), **kwargs)
