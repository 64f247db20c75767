"""The fused kernels (slimnorm.kernels) and the TF-ops path they fall back to.

Both paths run every case: values against slimnorm.reference (numpy),
gradients against TensorFlow's own float64 ops (tf.nn.moments + autodiff),
numeric Jacobians, bit-for-bit determinism of the kernel, odd shapes and
inputs of large mean. Which path a graph took is read from its op types.
"""
import contextlib

import numpy as np
import pytest
import tensorflow as tf

import slimnorm
from slimnorm import kernels
from slimnorm import reference as ref
from tests.graph_utils import TOL, random_params, rel_err

tf1 = tf.compat.v1
KERNEL_OP = "SlimnormGroupNorm"
BFLOAT16 = tf.bfloat16.as_numpy_dtype
GRAD_TOL = {np.float32: 2e-5, np.float16: 4e-3, BFLOAT16: 3e-2}
PATHS = ("kernel", "tf_ops")


@pytest.fixture(scope="session")
def kernel_library():
    """Compiles (or loads from the cache) the kernels once per test session."""
    available, reason = kernels.kernels_available()
    # Skipped only where the kernel path cannot run by design (switched off,
    # or a machine without a C++ compiler); a compiler that fails is a failure.
    if not available and (not kernels.enabled() or reason.startswith("no C++ compiler")):
        pytest.skip(reason)
    assert available, reason
    return reason


def _path(path):
    return contextlib.nullcontext() if path == "kernel" else kernels.tf_ops_only()


class Case:
    """A layer call and its float64 TF reference geometry.

    split: x's shape with the channel axis split into (groups, members) where
    the layer has groups; axes: the moments' axes in that shape; params: the
    broadcast shape of gamma and beta against x.
    """

    def __init__(self, name, layer, shape, split, axes, params, epsilon=1e-6, **kwargs):
        self.name, self.layer, self.shape, self.kwargs = name, layer, shape, kwargs
        self.split, self.axes, self.params, self.epsilon = split, axes, params, epsilon

    def __repr__(self):
        return self.name

    def channels(self):
        return int(np.prod(self.params))


GN, LN, IN = slimnorm.group_norm, slimnorm.layer_norm, slimnorm.instance_norm
CASES = [
    Case("gn_nhwc", GN, (2, 5, 4, 8), (2, 5, 4, 4, 2), (1, 2, 4), (8,), groups=4),
    Case("gn_nchw", GN, (2, 8, 3, 5), (2, 2, 4, 3, 5), (2, 3, 4), (1, 8, 1, 1), groups=2,
         channels_axis=1, reduction_axes=(2, 3)),
    Case("gn_dense", GN, (6, 12), (6, 3, 4), (2,), (12,), groups=3, reduction_axes=()),
    Case("ln_nhwc", LN, (3, 4, 5, 6), (3, 4, 5, 6), (1, 2, 3), (6,), epsilon=1e-12),
    Case("ln_dense", LN, (4, 10), (4, 10), (1,), (10,), epsilon=1e-12),
    Case("in_nhwc", IN, (2, 3, 4, 5), (2, 3, 4, 5), (1, 2), (5,)),
    Case("in_nchw", IN, (2, 5, 3, 4), (2, 5, 3, 4), (2, 3), (1, 5, 1, 1), data_format="NCHW"),
]
ODD_CASES = [
    Case("one_group", GN, (2, 3, 3, 8), (2, 3, 3, 1, 8), (1, 2, 4), (8,), groups=1),
    Case("group_size_1", GN, (2, 3, 3, 8), (2, 3, 3, 8, 1), (1, 2, 4), (8,), groups=8),
    Case("hw_1", GN, (4, 1, 1, 8), (4, 1, 1, 2, 4), (1, 2, 4), (8,), groups=2),
    Case("hw_1_nchw", GN, (3, 8, 1, 1), (3, 2, 4, 1, 1), (2, 3, 4), (1, 8, 1, 1), groups=2,
         channels_axis=1, reduction_axes=(2, 3)),
    Case("batch_1", GN, (1, 4, 4, 8), (1, 4, 4, 4, 2), (1, 2, 4), (8,), groups=4),
    Case("in_batch_1", IN, (1, 3, 2, 6), (1, 3, 2, 6), (1, 2), (6,)),
]


def run_case(case, x, gamma, beta, dy, path, threads=0):
    """(y, dx, dgamma, dbeta) of the layer in a fresh graph, and whether the kernel ran."""
    const = tf1.constant_initializer
    inits = {"gamma": const(gamma), "beta": const(beta)}
    with tf.Graph().as_default() as graph:
        inputs = tf.constant(x)
        with _path(path):
            y = case.layer(inputs, param_initializers=inits, **case.kwargs)
        params = {v.op.name.rsplit("/", 1)[-1]: v for v in tf1.trainable_variables()}
        grads = tf.gradients(y, [inputs, params["gamma"], params["beta"]],
                             grad_ys=tf.constant(dy))
        config = tf1.ConfigProto(intra_op_parallelism_threads=threads)
        with tf1.Session(config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run([y] + grads)
        used = any(op.type == KERNEL_OP for op in graph.get_operations())
    return out, used


def tf_reference(case, x, gamma, beta, dy):
    """y, dx, dgamma, dbeta in float64 from TensorFlow's moments and autodiff."""
    with tf.Graph().as_default(), tf1.Session() as sess:
        inputs, g, b = (tf.constant(np.asarray(v, np.float64)) for v in (x, gamma, beta))
        split = tf.reshape(inputs, case.split)
        mean, variance = tf.nn.moments(split, case.axes, keepdims=True)
        normalized = tf.reshape((split - mean) * tf.math.rsqrt(variance + case.epsilon),
                                case.shape)
        y = normalized * tf.reshape(g, case.params) + tf.reshape(b, case.params)
        grads = tf.gradients(y, [inputs, g, b], grad_ys=tf.constant(np.asarray(dy, np.float64)))
        return sess.run([y] + grads)


def numpy_reference(case, x, gamma, beta):
    kw = case.kwargs
    if case.layer is GN:
        return ref.group_norm(x, kw["groups"], gamma, beta, channels_axis=kw.get("channels_axis", -1),
                              reduction_axes=kw.get("reduction_axes", (-3, -2)))
    if case.layer is LN:
        return ref.layer_norm(x, gamma, beta)
    return ref.instance_norm(x, gamma, beta, data_format=kw.get("data_format", "NHWC"))


def data(case, dtype, mean=0.5, seed=0):
    """x, gamma, beta, dy rounded to `dtype` (the values the layer really sees)."""
    rng = np.random.default_rng(seed)
    x = (mean + rng.normal(size=case.shape)).astype(dtype)
    gamma, beta = (p.astype(dtype) for p in random_params(case.channels(), seed + 1))
    dy = rng.normal(size=case.shape).astype(dtype)
    return x, gamma, beta, dy


def check_against_references(case, dtype, path, mean=0.5, y_tol=None, grad_tol=None):
    x, gamma, beta, dy = data(case, dtype, mean)
    (y, *grads), used = run_case(case, x, gamma, beta, dy, path)
    assert used == (path == "kernel")
    assert rel_err(y, numpy_reference(case, x, gamma, beta)) < (y_tol or TOL[dtype])
    expected = tf_reference(case, x, gamma, beta, dy)
    for name, got, want in zip(("y", "dx", "dgamma", "dbeta"), [y] + grads, expected):
        assert rel_err(got, want) < (grad_tol or GRAD_TOL[dtype]), name
    return [y] + grads


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, BFLOAT16])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_values_and_gradients_match_references(kernel_library, case, dtype, path):
    check_against_references(case, dtype, path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", ODD_CASES, ids=repr)
def test_odd_shapes(kernel_library, case, path):
    check_against_references(case, np.float32, path)


@pytest.mark.parametrize("path", PATHS)
def test_cells_of_one_value_give_beta_and_no_input_gradient(kernel_library, path):
    # Instance norm with H = W = 1: each cell is one value, so y = beta and
    # dx = 0; the gradient's two terms, each about gamma * dy / sqrt(epsilon)
    # = 1e3, cancel up to their float32 rounding.
    case = Case("in_hw_1", IN, (3, 1, 1, 6), None, None, (6,))
    x, gamma, beta, dy = data(case, np.float32)
    (y, dx, dgamma, dbeta), used = run_case(case, x, gamma, beta, dy, path)
    assert used == (path == "kernel")
    np.testing.assert_allclose(y, np.broadcast_to(beta, y.shape), rtol=0, atol=1e-6)
    assert np.abs(dx).max() < 1e3 * 1e-6
    np.testing.assert_allclose(dgamma, 0.0, atol=1e-6)
    np.testing.assert_allclose(dbeta, dy.sum(axis=(0, 1, 2)), rtol=1e-6)


@pytest.mark.parametrize("case", CASES + ODD_CASES, ids=repr)
def test_the_two_paths_agree(kernel_library, case):
    x, gamma, beta, dy = data(case, np.float32, seed=3)
    kernel, used = run_case(case, x, gamma, beta, dy, "kernel")
    tf_ops, unused = run_case(case, x, gamma, beta, dy, "tf_ops")
    assert used and not unused
    for a, b in zip(kernel, tf_ops):
        assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[3], CASES[6]], ids=repr)
def test_large_mean_inputs_keep_float32_precision(kernel_library, case, path):
    # 1e4 + N(0, 1): plain sums of squares lose every digit, and a rounded
    # float32 mean (spacing 1e-3) would show in the output and dx.
    check_against_references(case, np.float32, path, mean=1e4, y_tol=1e-5, grad_tol=2e-5)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[2], CASES[6]], ids=repr)
def test_kernel_gradient_matches_numeric_jacobian(kernel_library, case):
    x, gamma, beta, _ = data(case, np.float32, seed=5)
    inits = {"gamma": tf1.constant_initializer(gamma), "beta": tf1.constant_initializer(beta)}
    with tf.Graph().as_default() as graph, tf1.Session() as sess:
        inputs = tf.constant(x)
        y = case.layer(inputs, param_initializers=inits, **case.kwargs)
        assert any(op.type == KERNEL_OP for op in graph.get_operations())
        sess.run(tf1.global_variables_initializer())
        analytic, numeric = tf1.test.compute_gradient(
            inputs, list(x.shape), y, list(x.shape), x_init_value=x, delta=1e-2)
    assert np.abs(analytic).max() > 1e-2
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=3e-3)


def test_kernel_is_deterministic_across_runs_and_thread_counts(kernel_library):
    case = Case("big", GN, (8, 16, 16, 64), None, None, (64,), groups=8)
    x, gamma, beta, dy = data(case, np.float32, seed=9)
    runs = [run_case(case, x, gamma, beta, dy, "kernel", threads)[0] for threads in (1, 2, 2)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_second_derivatives_through_the_kernel(kernel_library):
    # A gradient penalty: d/dx |d(sum(y * w))/dx|^2, float32 kernel vs the
    # float64 TF-ops path.
    rng = np.random.default_rng(12)
    x, weights = rng.normal(size=(2, 3, 2, 8)), rng.normal(size=(2, 3, 2, 8))

    def penalty_gradient(dtype):
        with tf.Graph().as_default() as graph, tf1.Session() as sess:
            inputs = tf.constant(x.astype(dtype))
            y = slimnorm.group_norm(inputs, groups=2)
            grad = tf.gradients(tf.reduce_sum(y * weights.astype(dtype)), inputs)[0]
            second = tf.gradients(tf.reduce_sum(grad * grad), inputs)[0]
            sess.run(tf1.global_variables_initializer())
            kernel = any(op.type == KERNEL_OP for op in graph.get_operations())
            return sess.run(second), kernel

    (got, kernel), (want, other) = penalty_gradient(np.float32), penalty_gradient(np.float64)
    assert kernel and not other
    assert rel_err(got, want) < 1e-4


def _kernel_in_graph(build):
    with tf.Graph().as_default() as graph:
        build()
        return any(op.type == KERNEL_OP for op in graph.get_operations())


def test_which_graphs_take_the_kernel(kernel_library, monkeypatch):
    x32 = np.zeros((2, 4, 4, 8), np.float32)
    assert _kernel_in_graph(lambda: GN(tf.constant(x32), groups=4))
    assert not _kernel_in_graph(lambda: GN(tf.constant(x32.astype(np.float64)), groups=4))
    # an axis with its own statistics between the reduced ones: no 3-D view
    assert not _kernel_in_graph(lambda: GN(tf.constant(x32), groups=2, channels_axis=2,
                                           reduction_axes=(1,)))

    def on_gpu():
        with tf.device("/device:GPU:0"):
            GN(tf.constant(x32), groups=4)
    assert not _kernel_in_graph(on_gpu)

    def tf_ops_only():
        with kernels.tf_ops_only():
            LN(tf.constant(x32))
    assert not _kernel_in_graph(tf_ops_only)
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert not _kernel_in_graph(lambda: IN(tf.constant(x32)))
    assert slimnorm.kernels_available() == (False, "disabled by SLIMNORM_KERNELS=0")
