"""group_norm vs slimnorm.reference; and what the three group-family layers
share (group_family: variables, collections, dtypes, arg_scope; group_math:
the gradient), tested once for all three."""
import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import group_math
from slimnorm import reference as ref
from tests.graph_utils import TOL, check_jacobian, random_params, rel_err, run_graph, run_layer

tf1 = tf.compat.v1
GRAPH_KEYS = tf1.GraphKeys
LAYERS = {
    "group_norm": (lambda x, **kw: slimnorm.group_norm(x, groups=2, **kw), "GroupNorm"),
    "layer_norm": (slimnorm.layer_norm, "LayerNorm"),
    "instance_norm": (slimnorm.instance_norm, "InstanceNorm"),
}


def reference_of(name, x, gamma=None, beta=None):
    """slimnorm.reference's answer for the LAYERS entry `name` on NHWC x."""
    if name == "group_norm":
        return ref.group_norm(x, 2, gamma, beta)
    return getattr(ref, name)(x, gamma, beta)


@pytest.mark.parametrize("shape, groups, channels_axis, reduction_axes", [
    ((2, 5, 4, 8), 4, -1, (-3, -2)),
    ((3, 6, 6, 16), 16, -1, (-3, -2)),   # one channel per group: instance norm
    ((3, 6, 6, 16), 1, -1, (-3, -2)),    # one group: layer norm
    ((2, 3, 4, 5, 8), 2, -1, (-3, -2)),  # the depth axis keeps its own statistics
    ((4, 10, 6), 3, -1, (-2,)),
    ((6, 12), 3, -1, ()),
    ((2, 8, 5, 4), 4, 1, (2, 3)),        # NCHW
    ((2, 5, 8, 4), 2, 2, (1,)),          # axis 3 keeps its own statistics
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16,
                                   tf.bfloat16.as_numpy_dtype])
def test_matches_reference(shape, groups, channels_axis, reduction_axes, dtype):
    x = np.random.default_rng(0).normal(3.0, 2.0, shape).astype(dtype)
    gamma, beta = random_params(shape[channels_axis])
    y = run_layer(slimnorm.group_norm, x, gamma, beta, groups=groups,
                  channels_axis=channels_axis, reduction_axes=reduction_axes)
    expected = ref.group_norm(x, groups, gamma, beta, channels_axis=channels_axis,
                              reduction_axes=reduction_axes)
    assert rel_err(y, expected) < TOL[dtype]


def test_nchw_equals_nhwc_transposed():
    x = np.random.default_rng(1).normal(size=(3, 4, 5, 8)).astype(np.float32)
    gamma, beta = random_params(8)
    nhwc = run_layer(slimnorm.group_norm, x, gamma, beta, groups=4)
    nchw = run_layer(slimnorm.group_norm, np.moveaxis(x, -1, 1), gamma, beta, groups=4,
                     channels_axis=-3, reduction_axes=(-2, -1))
    np.testing.assert_allclose(np.moveaxis(nhwc, -1, 1), nchw, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_large_mean_inputs_keep_float32_precision(name):
    # Sums of squares without a shift would lose every digit here, and
    # x * scale + offset would show the float32 spacing at 1e4 (1e-3).
    layer, _ = LAYERS[name]
    x = (1e4 + np.random.default_rng(2).normal(size=(4, 6, 5, 8))).astype(np.float32)
    gamma, beta = random_params(8)
    y = run_layer(layer, x, gamma, beta)
    assert rel_err(y, reference_of(name, x, gamma, beta)) < 1e-5


def test_group_size_is_the_other_way_to_give_groups():
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 12)).astype(np.float32)
    by_groups = run_layer(slimnorm.group_norm, x, groups=3)
    by_size = run_layer(slimnorm.group_norm, x, group_size=4)
    both = run_layer(slimnorm.group_norm, x, groups=3, group_size=4)
    np.testing.assert_array_equal(by_groups, by_size)
    np.testing.assert_array_equal(by_groups, both)
    assert rel_err(by_size, ref.group_norm(x, 3)) < 1e-5
    assert rel_err(run_layer(slimnorm.group_norm, x, group_size=12), ref.group_norm(x, 1)) < 1e-5


def test_mean_close_to_zero_is_accepted_and_changes_nothing():
    x = np.random.default_rng(4).normal(size=(2, 4, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(run_layer(slimnorm.group_norm, x, groups=4),
                                  run_layer(slimnorm.group_norm, x, groups=4,
                                            mean_close_to_zero=True))


def test_unknown_batch_and_spatial_sizes_are_fed_at_run_time():
    x = np.random.default_rng(5).normal(size=(3, 5, 4, 8)).astype(np.float32)
    with tf.Graph().as_default():
        images = tf1.placeholder(tf.float32, [None, None, None, 8])
        y = slimnorm.group_norm(images, groups=4)
        assert y.shape.as_list() == [None, None, None, 8]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y, {images: x})
    assert rel_err(out, ref.group_norm(x, 4)) < 1e-5


@pytest.mark.parametrize("shape, groups, channels_axis, reduction_axes", [
    ((2, 3, 2, 4), 2, -1, (-3, -2)),
    ((2, 4, 3, 2), 2, 1, (2, 3)),
    ((3, 6), 2, -1, ()),
])
def test_gradient_matches_numeric_jacobian(shape, groups, channels_axis, reduction_axes):
    x = np.random.default_rng(6).normal(1.0, 2.0, shape)
    gamma, beta = random_params(shape[channels_axis])
    inits = {"gamma": tf1.constant_initializer(gamma), "beta": tf1.constant_initializer(beta)}
    check_jacobian(lambda t: slimnorm.group_norm(
        t, groups=groups, channels_axis=channels_axis, reduction_axes=reduction_axes,
        param_initializers=inits), x)


# group_math directly: the gradient w.r.t. gamma and beta too, for the view
# layouts the three layers produce (GN NHWC/NCHW, IN, LN, dense GN, LN with
# parameters over a batch-like axis).
@pytest.mark.parametrize("shape, roles", [
    ((2, 3, 2, 2), "brgm"), ((2, 2, 2, 3), "bgmr"), ((2, 4, 3), "brg"),
    ((2, 4, 3), "brm"), ((3, 2, 2), "bgm"), ((2, 3, 4), "bgm"), ((3, 5), "bm"),
])
@pytest.mark.parametrize("has_gamma, has_beta", [(True, True), (False, True), (True, False)])
def test_group_math_gradients_match_numeric_jacobians(shape, roles, has_gamma, has_beta):
    rng = np.random.default_rng(7)
    x = rng.normal(1.0, 2.0, shape)
    param_shape = [s if r in "gm" else 1 for s, r in zip(shape, roles)]
    gamma, beta = rng.uniform(0.5, 2.0, param_shape), rng.normal(0.0, 1.0, param_shape)
    with tf.Graph().as_default(), tf1.Session():
        tensors = [tf.constant(x), tf.constant(gamma), tf.constant(beta)]
        y = group_math.normalize(tensors[0], roles, tensors[1] if has_gamma else None,
                                 tensors[2] if has_beta else None, 1e-3)
        wrt = [0] + [i for i, on in ((1, has_gamma), (2, has_beta)) if on]
        values = [x, gamma, beta]
        jacobians = tf1.test.compute_gradient(
            [tensors[i] for i in wrt], [values[i].shape for i in wrt], y, list(shape),
            x_init_value=[values[i] for i in wrt], delta=1e-5)
    for analytic, numeric in jacobians:
        assert np.abs(analytic).max() > 1e-3
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


def test_gradient_of_the_gradient_matches_numeric():
    # The hand-written gradient is itself made of differentiable ops on the
    # forward's tensors, so second derivatives (gradient penalties) work.
    rng = np.random.default_rng(12)
    x_value, weights = rng.normal(size=(2, 3, 2, 4)), rng.normal(size=(2, 3, 2, 4))

    def squared_gradient_norm(x):
        y = slimnorm.group_norm(x, groups=2)
        grad = tf.gradients(tf.reduce_sum(y * weights), x)[0]
        return tf.reshape(tf.reduce_sum(grad * grad), [1])

    check_jacobian(squared_gradient_norm, x_value)


def test_float32_gradients_on_large_mean_inputs_match_float64():
    rng = np.random.default_rng(8)
    x = 1e4 + rng.normal(size=(2, 6, 5, 8))
    dy = rng.normal(size=x.shape)
    gamma, beta = random_params(8)

    def gradients(dtype):
        def build():
            inits = {"gamma": tf1.constant_initializer(gamma),
                     "beta": tf1.constant_initializer(beta)}
            inputs = tf.constant(x.astype(np.float32).astype(dtype))
            y = slimnorm.group_norm(inputs, groups=4, param_initializers=inits)
            return tf.gradients(y, [inputs] + tf1.trainable_variables(), grad_ys=dy.astype(dtype))
        return run_graph(build)

    for grad32, grad64 in zip(gradients(np.float32), gradients(np.float64)):
        assert rel_err(grad32, grad64) < 1e-5


# ---- what the three layers share -------------------------------------------

@pytest.mark.parametrize("name", sorted(LAYERS))
def test_variable_names_and_collections(name):
    layer, default_scope = LAYERS[name]
    with tf.Graph().as_default():
        x = tf.zeros([2, 4, 4, 8])
        layer(x, variables_collections=["norm_params"])
        layer(x, scope="named", variables_collections={"gamma": ["gammas"]})
        layer(x, center=False, trainable=False)

        def names(key):
            return sorted(v.op.name for v in tf1.get_collection(key))

        second = default_scope + "_1"
        assert names(GRAPH_KEYS.GLOBAL_VARIABLES) == sorted(
            ["%s/beta" % default_scope, "%s/gamma" % default_scope, "named/beta",
             "named/gamma", "%s/gamma" % second])
        assert names(GRAPH_KEYS.MODEL_VARIABLES) == names(GRAPH_KEYS.GLOBAL_VARIABLES)
        assert names(GRAPH_KEYS.TRAINABLE_VARIABLES) == sorted(
            ["%s/beta" % default_scope, "%s/gamma" % default_scope, "named/beta",
             "named/gamma"])
        assert names("norm_params") == ["%s/beta" % default_scope, "%s/gamma" % default_scope]
        assert names("gammas") == ["named/gamma"]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_param_regularizers_add_regularization_losses(name):
    layer, _ = LAYERS[name]
    with tf.Graph().as_default():
        layer(tf.ones([2, 4, 4, 8]), param_regularizers={
            "gamma": lambda w: 0.5 * tf.reduce_sum(w), "beta": lambda w: tf.reduce_sum(w) + 3.0},
            param_initializers={"beta": tf1.constant_initializer(1.0)})
        losses = tf1.get_collection(GRAPH_KEYS.REGULARIZATION_LOSSES)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            assert sorted(sess.run(losses)) == [4.0, 11.0]  # 0.5 * 8 ones; 8 ones + 3


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_reuse_shares_variables_and_refuses_other_channel_counts(name):
    layer, _ = LAYERS[name]
    with tf.Graph().as_default():
        a = layer(tf.ones([2, 4, 4, 8]), scope="shared")
        b = layer(tf.zeros([3, 4, 4, 8]), scope="shared", reuse=True)
        assert len(tf1.global_variables()) == 2
        assert a.shape.as_list() == [2, 4, 4, 8] and b.shape.as_list() == [3, 4, 4, 8]
        with pytest.raises(ValueError, match="shape \\[8\\].*need shape \\[16\\]"):
            layer(tf.ones([2, 4, 4, 16]), scope="shared", reuse=True)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_outputs_collections_activation_and_initializers(name):
    layer, _ = LAYERS[name]
    x = np.random.default_rng(9).normal(size=(2, 4, 4, 8)).astype(np.float32)

    def build():
        y = layer(tf.constant(x), activation_fn=tf.nn.relu, outputs_collections="ends",
                  scope="norm", param_initializers={"beta": tf1.constant_initializer(-5.0)})
        ends = tf1.get_collection("ends")
        assert len(ends) == 1 and ends[0].aliases == ["norm"]
        return y

    assert np.all(run_graph(build) == 0.0)  # normalised values - 5 are below 0 here


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_inputs_keep_slims_parameter_dtype(name, dtype):
    """slim created beta/gamma in the inputs' dtype; its float16 checkpoints restore."""
    layer, _ = LAYERS[name]
    with tf.Graph().as_default():
        y = layer(tf.ones([2, 4, 4, 8], dtype))
        assert y.dtype == dtype
        assert {v.dtype.base_dtype for v in tf1.global_variables()} == {dtype}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_partitioned_parameters(name):
    layer, _ = LAYERS[name]
    x = np.random.default_rng(10).normal(size=(2, 4, 4, 8)).astype(np.float32)

    def build():
        with tf1.variable_scope("p", partitioner=tf1.fixed_size_partitioner(2)):
            y = layer(tf.constant(x), param_initializers={"gamma": tf1.constant_initializer(2.0)})
        assert len(tf1.global_variables()) == 4  # beta and gamma in 2 parts each
        return y

    assert rel_err(run_graph(build), reference_of(name, x, np.full(8, 2.0))) < 1e-5


@pytest.mark.parametrize("name, params", [
    ("group_norm", {"groups": 2}), ("layer_norm", {}), ("instance_norm", {})])
def test_arg_scope_network_trains(name, params):
    rng = np.random.default_rng(11)
    images = rng.normal(size=(8, 6, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 2, 8)
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        with slim.arg_scope([slim.conv2d], normalizer_fn=getattr(slimnorm, name),
                            normalizer_params=params):
            net = slim.conv2d(tf.constant(images), 4, [3, 3], scope="conv1")
            net = slim.conv2d(net, 4, [3, 3], scope="conv2")
        logits = slim.fully_connected(slim.flatten(net), 2, activation_fn=None)
        loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        train_op = tf1.train.GradientDescentOptimizer(0.5).minimize(loss)
        prefix = LAYERS[name][1]
        assert {"conv1/%s/gamma" % prefix, "conv2/%s/beta" % prefix} <= {
            v.op.name for v in tf1.trainable_variables()}
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            first = sess.run(loss)
            for _ in range(20):
                sess.run(train_op)
            assert sess.run(loss) < 0.5 * first


# ---- errors ------------------------------------------------------------------

def _unknown_channels():
    return tf1.placeholder(tf.float32, [2, 4, 4, None])


@pytest.mark.parametrize("inputs, kwargs, error, message", [
    (lambda: tf.ones([2, 4, 4, 8]), {"groups": 16}, ValueError, "Invalid groups 16 for 8 channels: groups=16 is larger"),
    (lambda: tf.ones([2, 4, 4, 12]), {"groups": 8}, ValueError, "12 channels is not commensurate with 8 groups: groups=8 does not divide"),
    (lambda: tf.ones([2, 4, 4, 8]), {"groups": 0}, ValueError, "groups must be an integer >= 1"),
    (lambda: tf.ones([2, 4, 4, 8]), {"groups": 2.0}, TypeError, "groups must be an integer"),
    (lambda: tf.ones([2, 4, 4, 12]), {"group_size": 5}, ValueError,
     "group_size=5 does not divide the 12"),
    (lambda: tf.ones([2, 4, 4, 12]), {"groups": 2, "group_size": 4}, ValueError,
     "groups=2 and group_size=4 disagree"),
    (_unknown_channels, {}, ValueError, "undefined channel dimension"),
    (lambda: tf1.placeholder(tf.float32), {}, ValueError, "undefined rank"),
    (lambda: tf.ones([2, 4, 4, 8]), {"epsilon": -1e-6}, ValueError, "epsilon must be a number >= 0, got -1e-06"),
    (lambda: tf.ones([2, 4, 4, 8]), {"param_initializers": {"moving_mean": None}},
     ValueError, "param_initializers has unknown keys \\['moving_mean'\\]"),
    (lambda: tf.ones([2, 4, 4, 8]), {"param_regularizers": {"alpha": None}},
     ValueError, "param_regularizers has unknown keys"),
    (lambda: tf.ones([2, 4, 4, 8]), {"reduction_axes": (-2, -1)}, ValueError,
     "mutually exclusive with channels_axis: reduction_axes=\\(-2, -1\\) includes the "
     "channels axis"),
    (lambda: tf.ones([2, 4, 4, 8]), {"reduction_axes": (1, -3)}, ValueError,
     "names an axis twice"),
    (lambda: tf.ones([2, 4, 4, 8]), {"reduction_axes": (-5,)}, ValueError,
     "Axis is out of bounds: reduction_axes entry=-5 for inputs of rank 4"),
    (lambda: tf.ones([2, 8]), {}, ValueError, "Axis is out of bounds: reduction_axes entry=-3"),
    (lambda: tf.ones([2, 4, 4, 8]), {"reduction_axes": None}, TypeError,
     "reduction_axes must be a sequence"),
    (lambda: tf.ones([2, 4, 4, 8]), {"channels_axis": 4}, ValueError,
     "Axis is out of bounds: channels_axis=4 for inputs of rank 4"),
    (lambda: tf.ones([2, 4, 4, 8]), {"mean_close_to_zero": "yes"}, TypeError,
     "mean_close_to_zero must be True or False"),
    (lambda: tf.ones([2, 4, 4, 8]), {"activation_fn": "relu"}, TypeError,
     "activation_fn must be None or a callable"),
    (lambda: tf.ones([2, 4, 4, 8], tf.int32), {}, TypeError, "floating-point tensor"),
])
def test_errors_name_argument_value_and_what_is_accepted(inputs, kwargs, error, message):
    with tf.Graph().as_default():
        kwargs.setdefault("groups", 2)
        with pytest.raises(error, match=message):
            slimnorm.group_norm(inputs(), **kwargs)
        assert not tf1.global_variables()  # refused before any variable exists
