"""The eight differences from tf-slim 1.1.0's batch norm of issue 22, one test (or more) each.

Causes 1-6 are matched: each expected value is computed here with numpy, or
read from slim's source (`tf_slim/layers/layers.py` and the Keras-era
`BatchNormalization` it builds), and where tf-keras is installed the real
tf-slim function (`tests/slim_oracle.py`) is run on the same input as a
second witness. Causes 7-8 are where slimnorm keeps its own behaviour
(docs/fidelity.md); their tests pin both sides.
"""
import numpy as np
import pytest
import slim_oracle
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import reference as ref
from tests.graph_utils import rel_err

tf1 = tf.compat.v1
GK = tf1.GraphKeys
LAYOUTS = ["NHWC", "NCHW"]


def _channels_last(x, data_format):
    """x as [..., C] for numpy statistics."""
    return np.moveaxis(x, 1, -1) if data_format == "NCHW" else x


def _build_and_step(build, x, steps=1, feed=None):
    """Builds `build(tensor)` in a new graph, runs the output with the update ops `steps`
    times; returns (output, number of update ops, {variable name: value}, graph facts)."""
    with tf.Graph().as_default():
        y = build(tf.constant(x))
        updates = tf1.get_collection(GK.UPDATE_OPS)
        facts = {"variables": [v.op.name for v in tf1.global_variables()],
                 "model": [v.op.name for v in tf1.model_variables()],
                 "trainable": [v.op.name for v in tf1.trainable_variables()],
                 "mine": [v.op.name for v in tf1.get_collection("mine")],
                 "losses": tf1.get_collection(GK.REGULARIZATION_LOSSES),
                 "op": y.op.type}
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(steps):
                out = sess.run([y] + updates)[0]
            values = {v.op.name: sess.run(v) for v in tf1.global_variables()}
            facts["losses"] = sess.run(facts["losses"])
    return out, len(updates), values, facts


def _both(x, steps=1, **kwargs):
    """(slimnorm's result, tf-slim's result or None without tf-keras)."""
    ours = _build_and_step(lambda t: slimnorm.batch_norm(t, **kwargs), x, steps)
    slims = None
    if slim_oracle.available():
        slims = _build_and_step(lambda t: slim_oracle.batch_norm(t, **kwargs), x, steps)
    return ours, slims


def _agree(ours, slims, tolerance=1e-5):
    """The oracle, when it runs, sees the same outputs, update count, variables and values."""
    if slims is None:
        return
    assert rel_err(ours[0], slims[0]) < tolerance
    assert ours[1] == slims[1]
    assert ours[3]["variables"] == slims[3]["variables"]
    assert ours[3]["model"] == slims[3]["model"]
    assert ours[3]["trainable"] == slims[3]["trainable"]
    assert ours[3]["mine"] == slims[3]["mine"]
    # Variable values within 1e-4: slim's fused Keras layer rounds 1 - decay
    # in float32 (0.999 -> 1.00005e-3), slimnorm in double (docs/fidelity.md).
    for name, value in slims[2].items():
        assert rel_err(ours[2][name], value) < max(tolerance, 1e-4), name


# Cause 1: rank 5 on slim's Keras-layer path runs the fused kernel (NDHWC/NCDHW).
@pytest.mark.parametrize("data_format", LAYOUTS)
def test_rank5_stores_the_unbiased_variance_as_slims_fused_layer(data_format):
    shape = (3, 2, 2, 2, 3) if data_format == "NHWC" else (3, 3, 2, 2, 2)
    x = np.random.default_rng(1).normal(1, 2, size=shape).astype(np.float32)
    ours, slims = _both(x, decay=0.0, data_format=data_format)
    flat = _channels_last(x, data_format).reshape(-1, 3).astype(np.float64)
    assert rel_err(ours[2]["BatchNorm/moving_variance"], flat.var(0, ddof=1)) < 1e-5
    assert ours[3]["op"] == "FusedBatchNormV3"
    _agree(ours, slims)


@pytest.mark.parametrize("data_format", LAYOUTS)
def test_rank5_off_the_layer_path_stores_the_biased_variance(data_format):
    """updates_collections=None: slim's legacy path, tf.nn.moments (divide by n)."""
    shape = (3, 2, 2, 2, 3) if data_format == "NHWC" else (3, 3, 2, 2, 2)
    x = np.random.default_rng(2).normal(1, 2, size=shape).astype(np.float32)
    ours, slims = _both(x, decay=0.0, data_format=data_format, updates_collections=None)
    flat = _channels_last(x, data_format).reshape(-1, 3).astype(np.float64)
    assert rel_err(ours[2]["BatchNorm/moving_variance"], flat.var(0)) < 1e-5
    _agree(ours, slims)


# Cause 2: trainable=False on the layer path: no update ops, the averages stay put.
@pytest.mark.parametrize("data_format", LAYOUTS)
def test_not_trainable_layer_path_adds_no_updates(data_format):
    x = np.random.default_rng(3).normal(2.5, 1, size=(4, 2, 3, 3)).astype(np.float32)
    ours, slims = _both(x, decay=0.5, trainable=False, data_format=data_format)
    assert ours[1] == 0
    np.testing.assert_array_equal(ours[2]["BatchNorm/moving_mean"], np.zeros(ours[2][
        "BatchNorm/moving_mean"].shape))
    axis = 1 if data_format == "NCHW" else -1
    expected = ref.batch_norm_train(x, epsilon=1e-3, data_format=data_format)[0]
    assert rel_err(ours[0], expected) < 1e-5 and x.shape[axis] in (2, 3)
    _agree(ours, slims)


@pytest.mark.parametrize("shape,kwargs", [((4, 3), {}),                        # fused function
                                          ((4, 5, 3), {"updates_collections": None})])  # legacy
def test_not_trainable_elsewhere_still_updates(shape, kwargs):
    x = np.random.default_rng(4).normal(2.5, 1, size=shape).astype(np.float32)
    ours, slims = _both(x, decay=0.5, trainable=False, **kwargs)
    assert ours[1] == (0 if kwargs else 2)
    flat = x.reshape(-1, 3).astype(np.float64)
    assert rel_err(ours[2]["BatchNorm/moving_mean"], 0.5 * flat.mean(0)) < 1e-5
    _agree(ours, slims)


# Cause 3: batch renorm as slim's layer built it.
RENORM_VARIABLES = ["BatchNorm/gamma", "BatchNorm/beta", "BatchNorm/moving_mean",
                    "BatchNorm/moving_variance", "BatchNorm/moving_stddev",
                    "BatchNorm/renorm_mean", "BatchNorm/renorm_stddev"]
RENORM_INIT = {"moving_mean": tf1.constant_initializer(1.5),
               "moving_variance": tf1.constant_initializer(4.0)}


@pytest.mark.parametrize("is_training", [True, False])
def test_renorm_variables_are_slims_in_training_and_eval(is_training):
    x = np.zeros((4, 3, 3, 2), np.float32)
    ours, slims = _both(x, renorm=True, scale=True, is_training=is_training,
                        variables_collections=["mine"])
    assert ours[3]["variables"] == RENORM_VARIABLES == ours[3]["model"]
    assert ours[3]["trainable"] == RENORM_VARIABLES[:2]
    # (e) and cause 4: only the four, in the order slim's layer path added them.
    assert ours[3]["mine"] == ["BatchNorm/moving_mean", "BatchNorm/moving_variance",
                               "BatchNorm/beta", "BatchNorm/gamma"]
    _agree(ours, slims)


@pytest.mark.parametrize("data_format", LAYOUTS)
def test_renorm_one_step_matches_numpy(data_format):
    """(b) moving variance via the stddev, (c) renorm averages start at the given statistics."""
    x = np.random.default_rng(5).normal(2, 3, size=(6, 2, 2, 2)).astype(np.float32)
    decay, renorm_decay, eps = 0.5, 0.7, 1e-3
    ours, slims = _both(x, renorm=True, decay=decay, renorm_decay=renorm_decay,
                        param_initializers=RENORM_INIT, data_format=data_format)
    mu, sigma = np.full(2, 1.5), np.full(2, 2.0)
    expected, mean_b, _, std_b, _, _ = ref.batch_renorm_train(
        x.astype(np.float64), mu, sigma, epsilon=eps, data_format=data_format)
    assert rel_err(ours[0], expected) < 1e-5
    stddev = ref.moving_average(sigma, std_b, decay)
    values = ours[2]
    assert rel_err(values["BatchNorm/moving_stddev"], stddev) < 1e-5
    assert rel_err(values["BatchNorm/moving_variance"], np.maximum(stddev ** 2 - eps, 0)) < 1e-5
    assert rel_err(values["BatchNorm/moving_mean"], ref.moving_average(mu, mean_b, decay)) < 1e-5
    assert rel_err(values["BatchNorm/renorm_mean"], ref.moving_average(mu, mean_b, renorm_decay)) < 1e-5
    assert rel_err(values["BatchNorm/renorm_stddev"],
                   ref.moving_average(sigma, std_b, renorm_decay)) < 1e-5
    _agree(ours, slims)


def test_renorm_moving_variance_numbers_of_the_issue():
    """decay 0.5, initial moving variance 4: the issue's 10.94 (slim), not EMA(var) = 12.65."""
    x = np.random.default_rng(6).normal(0, 4.5, size=(16, 1)).astype(np.float32)
    ours, slims = _both(x, renorm=True, decay=0.5,
                        param_initializers={"moving_variance": tf1.constant_initializer(4.0)})
    var = x.astype(np.float64).var(0)
    expected = (0.5 * 2.0 + 0.5 * np.sqrt(var + 1e-3)) ** 2 - 1e-3
    assert rel_err(ours[2]["BatchNorm/moving_variance"], expected) < 1e-5
    assert rel_err(ours[2]["BatchNorm/moving_variance"], 0.5 * 4 + 0.5 * var) > 1e-3
    _agree(ours, slims)


def _slim_renorm_graph_by_hand(values):
    """Variables with slim's renorm names, shapes and flags, created without any norm."""
    for name, value in values.items():
        getter = slim.model_variable
        getter(name, initializer=tf1.constant_initializer(value), shape=value.shape,
               trainable=name.split("/")[-1] in ("gamma", "beta"))


@pytest.mark.parametrize("direction", ["slim_to_slimnorm", "slimnorm_to_slim"])
def test_renorm_checkpoints_restore_both_ways(tmp_path, direction):
    rng = np.random.default_rng(7)
    values = {name: rng.uniform(0.5, 2, 3).astype(np.float32) for name in RENORM_VARIABLES}
    x = rng.normal(0, 1, size=(2, 2, 2, 3)).astype(np.float32)
    path = str(tmp_path / "model.ckpt")

    def write(build):
        with tf.Graph().as_default():
            build()
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                for variable in tf1.global_variables():
                    variable.load(values[variable.op.name], sess)
                tf1.train.Saver().save(sess, path)

    def read(build):
        with tf.Graph().as_default():
            y = build()
            with tf1.Session() as sess:
                tf1.train.Saver().restore(sess, path)
                restored = {v.op.name: sess.run(v) for v in tf1.global_variables()}
                return restored, (None if y is None else sess.run(y))

    ours = lambda: slimnorm.batch_norm(tf.constant(x), renorm=True, scale=True,  # noqa: E731
                                       is_training=False)
    if direction == "slim_to_slimnorm":
        write(lambda: _slim_renorm_graph_by_hand(values))
        restored, out = read(ours)
        expected = ref.batch_norm_inference(
            x, values["BatchNorm/moving_mean"], values["BatchNorm/moving_variance"],
            values["BatchNorm/gamma"], values["BatchNorm/beta"], 1e-3)
        assert rel_err(out, expected) < 1e-5
    else:
        write(ours)
        readers = [lambda: _slim_renorm_graph_by_hand(
            {name: np.zeros(3, np.float32) for name in values})]
        if slim_oracle.available():
            readers.append(lambda: slim_oracle.batch_norm(tf.constant(x), renorm=True,
                                                          scale=True, is_training=False))
        for reader in readers:
            restored, _ = read(reader)
            assert sorted(restored) == sorted(values)
            for name, value in values.items():
                np.testing.assert_array_equal(restored[name], value)
        return
    for name, value in values.items():
        np.testing.assert_array_equal(restored[name], value)


# Cause 4: variables_collections order per path.
@pytest.mark.parametrize("shape,kwargs,order", [
    ((2, 4, 4, 3), {}, ["moving_mean", "moving_variance", "beta", "gamma"]),     # layer
    ((2, 3), {}, ["beta", "gamma", "moving_mean", "moving_variance"]),           # fused fn
    ((2, 4, 3), {"updates_collections": None},
     ["beta", "gamma", "moving_mean", "moving_variance"]),                       # legacy
])
def test_variables_collections_order_is_slims(shape, kwargs, order):
    ours, slims = _both(np.ones(shape, np.float32), scale=True, variables_collections=["mine"],
                        **kwargs)
    assert ours[3]["mine"] == ["BatchNorm/" + name for name in order]
    _agree(ours, slims)


# Cause 5: updates_collections compared by identity, as slim did.
def _equal_but_not_identical():
    name = "".join(["update_", "ops"])
    assert name == GK.UPDATE_OPS and name is not GK.UPDATE_OPS
    return name


@pytest.mark.parametrize("shape,first,kind", [((2, 4, 4, 3), "beta", tf.Tensor),    # fused fn
                                              ((2, 5, 3), "beta", tf.Tensor)])       # legacy
def test_an_equal_updates_collection_name_takes_slims_other_paths(shape, first, kind):
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros(shape), scale=True,
                            updates_collections=_equal_but_not_identical())
        assert tf1.global_variables()[0].op.name == "BatchNorm/" + first
        assert all(isinstance(e, kind) for e in tf1.get_collection(GK.UPDATE_OPS))
    ours, slims = _both(np.random.default_rng(8).normal(size=shape).astype(np.float32),
                        scale=True, updates_collections=_equal_but_not_identical())
    _agree(ours, slims)


def test_an_equal_name_on_rank5_stores_the_biased_variance():
    x = np.random.default_rng(9).normal(1, 2, size=(3, 2, 2, 2, 3)).astype(np.float32)
    ours, slims = _both(x, decay=0.0, updates_collections=_equal_but_not_identical())
    assert rel_err(ours[2]["BatchNorm/moving_variance"],
                   x.reshape(-1, 3).astype(np.float64).var(0)) < 1e-5
    _agree(ours, slims)


# Cause 6: no epsilon floor on the fused kernel (TF 2.21's fused_batch_norm passes it on).
@pytest.mark.parametrize("shape,data_format", [((4, 1), "NHWC"), ((4, 1, 1, 1), "NHWC"),
                                               ((4, 1, 1, 1), "NCHW")])
def test_fused_epsilon_zero_is_used_as_given(shape, data_format):
    x = np.array([0, .002, .004, .006], np.float32).reshape(shape)
    ours, slims = _both(x, epsilon=0.0, data_format=data_format)
    values = x.astype(np.float64).ravel()
    expected = (values - values.mean()) / values.std()          # +-1.34, +-0.45
    np.testing.assert_allclose(ours[0].ravel(), expected, rtol=1e-3)
    assert ours[3]["op"] in ("FusedBatchNormV3", "Reshape")
    _agree(ours, slims, tolerance=1e-3)


# Cause 7 (kept, docs/fidelity.md): the legacy path applies param_regularizers and adjustment.
def test_legacy_path_applies_param_regularizers_where_slim_dropped_them():
    x = np.ones((2, 5, 3), np.float32)
    regularizers = {"gamma": lambda v: 2.0 * tf.reduce_sum(v)}
    ours, slims = _both(x, scale=True, updates_collections=None,
                        param_regularizers=regularizers)
    assert ours[3]["losses"] == [pytest.approx(6.0)]       # 2 * sum(ones(3))
    if slims is not None:
        assert slims[3]["losses"] == []                     # slim's legacy path: none


def test_legacy_path_applies_adjustment_where_slim_ignored_it():
    x = np.random.default_rng(10).normal(1, 2, size=(4, 5, 3)).astype(np.float32)
    scale, bias = np.array([1.5, 0.5, 2.0]), np.array([0.1, -0.2, 0.3])

    def adjustment(shape):
        return tf.constant(scale, tf.float32), tf.constant(bias, tf.float32)

    ours, slims = _both(x, updates_collections=None, adjustment=adjustment)
    x_hat = ref.batch_norm_train(x, epsilon=1e-3)[0]
    assert rel_err(ours[0], x_hat * scale + bias) < 1e-5
    if slims is not None:
        assert rel_err(slims[0], x_hat) < 1e-5


# Cause 8 (kept): layer_norm(begin_params_axis < -rank) is refused.
def test_layer_norm_begin_params_axis_below_minus_rank_is_refused():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="begin_params_axis=-5"):
        slimnorm.layer_norm(tf.zeros([2, 3, 3, 4]), begin_params_axis=-5)
