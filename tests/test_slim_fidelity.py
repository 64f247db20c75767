"""slimnorm behaves as tf-slim 1.1 did where users can see it (issue 9).

Each test states one of slim's behaviours, read from tf-slim's own code
(`tf_slim/layers/layers.py`, `normalization.py`), which no longer runs on
TensorFlow 2.21; `tests/test_tf_slim_norm_suite.py` runs slim's own tests.
"""
import numpy as np
import pytest
import slim_batch_norm_configs as configs
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm.batch_norm import slim_layout
from tests.graph_utils import rel_err

tf1 = tf.compat.v1
GK = tf1.GraphKeys


def _names(variables):
    return [v.op.name for v in variables]


def _in_graph(kwargs):
    """batch_weights='ones' becomes a [batch] tensor of the current graph."""
    if kwargs.get("batch_weights") == "ones":
        return dict(kwargs, batch_weights=tf.ones([2]))
    return kwargs


def test_moving_statistics_are_not_moving_average_variables(tmp_path):
    """cifar10_eval's pattern: ema.variables_to_restore() with no argument restores."""
    x = np.random.default_rng(0).normal(2, 3, size=(8, 4, 4, 3)).astype(np.float32)
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.constant(x), scale=True)
        assert tf1.moving_average_variables() == []
        loss = tf.reduce_mean(tf.square(y - 1.0))
        step = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        ema = tf1.train.ExponentialMovingAverage(0.9)
        with tf.control_dependencies([step] + tf1.get_collection(GK.UPDATE_OPS)):
            train_op = ema.apply(tf1.trainable_variables())
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train_op)
            saved_mean = sess.run(slim.get_variables_by_name("moving_mean")[0])
            tf1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.constant(x), scale=True, is_training=False)
        restore = tf1.train.ExponentialMovingAverage(0.9).variables_to_restore()
        assert restore["BatchNorm/moving_mean"].op.name == "BatchNorm/moving_mean"
        with tf1.Session() as sess:
            tf1.train.Saver(restore).restore(sess, str(tmp_path / "model.ckpt"))
            restored = sess.run(slim.get_variables_by_name("moving_mean")[0])
    assert np.any(saved_mean != 0)
    np.testing.assert_array_equal(restored, saved_mean)


@pytest.mark.parametrize("shape,kwargs,kind", [
    ((2, 4, 4, 3), {}, tf.Operation),                                  # the Keras-layer path
    ((2, 4, 4, 3), {"fused": False}, tf.Operation),
    ((2, 3), {}, tf.Tensor),                                           # the fused function
    ((2, 4, 4, 3), {"updates_collections": "mine"}, tf.Tensor),
    ((2, 4, 4, 3), {"fused": False, "batch_weights": "ones"}, tf.Tensor),  # legacy
])
def test_update_collection_entries_are_what_slim_put_there(shape, kwargs, kind):
    with tf.Graph().as_default():
        collection = kwargs.get("updates_collections", GK.UPDATE_OPS)
        slimnorm.batch_norm(tf.zeros(shape), **_in_graph(kwargs))
        entries = tf1.get_collection(collection)
        assert len(entries) == 2 and all(isinstance(e, kind) for e in entries)
        assert [getattr(e, "op", e).name for e in entries] == [
            "BatchNorm/AssignMovingAvg", "BatchNorm/AssignMovingAvg_1"]


@pytest.mark.parametrize("shape,kwargs,first", [
    ((2, 4, 4, 3), {}, "gamma"),                                       # Keras-layer path
    ((2, 4, 4, 3), {"fused": False}, "gamma"),
    ((2, 5, 3), {}, "gamma"),                                          # rank 3: the layer too
    ((2, 3), {}, "beta"),                                              # fused function
    ((2, 4, 4, 3), {"zero_debias_moving_mean": True}, "beta"),
    ((2, 4, 4, 3), {"updates_collections": None}, "beta"),
    ((2, 4, 4, 3), {"fused": False, "updates_collections": None}, "beta"),  # legacy
])
def test_variable_creation_order_follows_slims_path(shape, kwargs, first):
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros(shape), scale=True, **kwargs)
        names = [n.split("/")[-1] for n in _names(tf1.global_variables())][:4]
        affine = ["gamma", "beta"] if first == "gamma" else ["beta", "gamma"]
        assert names == affine + ["moving_mean", "moving_variance"]


def test_slim_layout_is_slims_dispatch():
    """The three branches at the top of slim's batch_norm."""
    base = dict(fused=None, rank=4, batch_weights=None, renorm=False, adjustment=None,
                zero_debias=False, updates_collections=GK.UPDATE_OPS)
    assert slim_layout(**base) == "layer"
    assert slim_layout(**dict(base, rank=2)) == "fused"
    assert slim_layout(**dict(base, rank=2, fused=False)) == "layer"
    assert slim_layout(**dict(base, zero_debias=True)) == "fused"
    assert slim_layout(**dict(base, zero_debias=True, fused=False)) == "legacy"
    assert slim_layout(**dict(base, renorm=True)) == "layer"
    assert slim_layout(**dict(base, batch_weights=object())) == "legacy"
    assert slim_layout(**dict(base, updates_collections=None, rank=3)) == "legacy"


@pytest.mark.parametrize("fused", [False, None])
def test_epsilon_zero_is_accepted(fused):
    """slim accepted 0, and on TF 2.21 the fused kernel uses it as given (no 1.001e-5 floor)."""
    x = np.random.default_rng(1).normal(1, 2, size=(4, 3, 3, 5)).astype(np.float32)
    mean, variance = np.full(5, 0.5), np.full(5, 2.0)
    init = {"moving_mean": tf1.constant_initializer(0.5),
            "moving_variance": tf1.constant_initializer(2.0)}
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.constant(x), epsilon=0.0, fused=fused, is_training=False,
                                param_initializers=init)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y)
    expected = (x - mean) / np.sqrt(variance)
    assert rel_err(out, expected) < 1e-6
    with tf.Graph().as_default(), pytest.raises(ValueError, match="epsilon must be a number >= 0"):
        slimnorm.batch_norm(tf.zeros([2, 3]), epsilon=-1e-5)


@pytest.mark.parametrize("fused,model_variables", [(False, 6), (None, 4)])
def test_zero_debias_variables_are_model_variables_on_slims_legacy_path(fused, model_variables):
    """slim's legacy path created them through its model-variable getter; the fused did not."""
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros([5, 3, 3, 3]), scale=True, zero_debias_moving_mean=True,
                            fused=fused)
        assert len(slim.get_model_variables()) == model_variables
        assert "BatchNorm/BatchNorm/moving_mean/biased" in _names(tf1.global_variables())
        assert "BatchNorm/BatchNorm/moving_mean/local_step" in _names(tf1.global_variables())


@pytest.mark.parametrize("layer", [slimnorm.layer_norm, slimnorm.group_norm,
                                   slimnorm.instance_norm])
def test_half_precision_group_family_parameters_restore_as_slims(layer):
    """beta/gamma in the inputs' dtype: get_variable(dtype=float16) reuse works."""
    x = np.random.default_rng(2).normal(3, 2, size=(2, 4, 4, 8)).astype(np.float16)
    with tf.Graph().as_default():
        y = layer(tf.constant(x), scope="N", **({"groups": 4} if layer is slimnorm.group_norm
                                                else {}))
        with tf1.variable_scope("N", reuse=True):
            gamma = tf1.get_variable("gamma", dtype=tf.float16)
        assert gamma.dtype.base_dtype == tf.float16
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y)
    assert out.dtype == np.float16 and np.all(np.isfinite(out))


@pytest.mark.parametrize("shape,kwargs,dtype", [
    ((2, 4, 4, 3), {}, tf.float32),                                      # layer path
    ((2, 3), {}, tf.float32),                                            # fused function
    ((2, 5, 3), {"updates_collections": None}, tf.float16),              # legacy: inputs'
    ((2, 4, 4, 3), {"fused": False, "batch_weights": "ones"}, tf.float16),
])
def test_half_precision_batch_norm_parameters_as_slims_path(shape, kwargs, dtype):
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.ones(shape, tf.float16), scale=True, **_in_graph(kwargs))
        assert y.dtype == tf.float16
        assert {v.dtype.base_dtype for v in tf1.global_variables()} == {dtype}


def test_legacy_path_half_precision_output_matches_numpy():
    x = np.random.default_rng(3).normal(2, 1, size=(6, 5, 3)).astype(np.float16)
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.constant(x), updates_collections=None)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run(y)
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean((0, 1))) / np.sqrt(x64.var((0, 1)) + 1e-3)
    assert rel_err(out, expected) < 2e-3


def test_output_op_names_are_slims():
    with tf.Graph().as_default():
        x = tf.zeros([2, 4, 4, 8])
        assert slimnorm.layer_norm(x).op.name == "LayerNorm/batchnorm/add_1"
        assert slimnorm.instance_norm(x).op.name == "InstanceNorm/instancenorm/add_1"
        assert slimnorm.group_norm(x, groups=4).op.name == "GroupNorm/Reshape_2"
        assert slimnorm.group_norm(x, groups=4, center=False).op.name == "GroupNorm_1/Reshape_1"
        assert slimnorm.batch_norm(x, fused=False, is_training=False).op.name.startswith(
            "BatchNorm/batchnorm/")
        assert slimnorm.batch_norm(x, is_training=False).op.name.startswith(
            "BatchNorm_1/FusedBatchNorm")


@pytest.mark.parametrize("build,phrases", [
    (lambda: slimnorm.batch_norm(tf1.placeholder(tf.float32)), ["undefined rank", "inputs"]),
    (lambda: slimnorm.batch_norm(tf1.placeholder(tf.float32), data_format="NHCW"),
     ["data_format has to be either NCHW or NHWC", "'NHCW'"]),
    (lambda: slimnorm.batch_norm(tf1.placeholder(tf.float32, [2, None])),
     ["undefined channels dimension", "axis 1"]),
    (lambda: slimnorm.layer_norm(tf1.placeholder(tf.float32, [2, None])),
     ["is not fully defined", "begin_params_axis=-1"]),
    (lambda: slimnorm.layer_norm(tf.zeros([2, 3]), begin_norm_axis=2),
     ["must be < rank(inputs)", "begin_norm_axis=2", "accepted are -2 to 1"]),
    (lambda: slimnorm.group_norm(tf.zeros([2, 4, 4, 4]), groups=3),
     ["4 channels is not commensurate with 3 groups", "groups=3", "divisors of 4"]),
    (lambda: slimnorm.group_norm(tf.zeros([2, 4, 4, 2]), groups=10),
     ["Invalid groups 10 for 2 channels", "groups=10"]),
    (lambda: slimnorm.group_norm(tf.zeros([2, 4, 4, 4]), channels_axis=5),
     ["Axis is out of bounds", "channels_axis=5", "accepted are -4 to 3"]),
    (lambda: slimnorm.group_norm(tf.zeros([2, 4, 4, 4]), reduction_axes=[-1], groups=2),
     ["mutually exclusive", "reduction_axes=(-1,)"]),
    (lambda: slimnorm.group_norm(tf1.placeholder(tf.float32, [2, 4, 4, None])),
     ["undefined channel dimension", "axis 3"]),
    (lambda: slimnorm.instance_norm(tf.zeros([2, 4, 4, 4]), data_format="NCWH"),
     ["data_format has to be either NCHW or NHWC", "'NCWH'"]),
])
def test_errors_carry_slims_phrase_and_ours(build, phrases):
    """slim's words (which code matches) plus the argument, value and what is accepted."""
    with tf.Graph().as_default(), pytest.raises(ValueError) as info:
        build()
    for phrase in phrases:
        assert phrase in str(info.value)


def test_batch_norm_checks_data_format_before_rank():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="data_format has to be"):
        slimnorm.batch_norm(tf1.placeholder(tf.float32), data_format="NCWH")


@pytest.mark.parametrize("shape,data_format", [((10, 2, 2, 3), "NHWC"), ((10, 3, 2, 2), "NCHW"),
                                               ((10, 6, 3), "NHWC")])
def test_in_place_updates_converge_to_eval_mode_exactly(shape, data_format):
    """slim's test: after convergence train- and eval-mode outputs are the same numbers."""
    x = np.random.default_rng(4).random(shape).astype(np.float32)
    with tf.Graph().as_default():
        training = tf.compat.v1.placeholder(tf.bool, [])
        y = slimnorm.batch_norm(tf.constant(x), decay=0.1, updates_collections=None,
                                is_training=training, fused=False, data_format=data_format)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(12):
                train_out = sess.run(y, {training: True})
            eval_out = sess.run(y, {training: False})
    np.testing.assert_array_equal(train_out, eval_out)


@pytest.mark.parametrize("kwargs,error,message", [
    ({"renorm": True, "renorm_clipping": {"rmin": 2.0, "rmax": 3.0}}, ValueError,
     "leaves out r = 1"),
    ({"renorm": True, "renorm_clipping": {"rmax": 0.5}}, ValueError, "leaves out r = 1"),
    ({"renorm": True, "renorm_clipping": {"rmin": 0.9, "rmax": 0.8}}, ValueError,
     "leaves out r = 1"),
    ({"renorm": True, "renorm_clipping": {"dmax": -1.0}}, ValueError,
     r"renorm_clipping\['dmax'\] must be a number >= 0, got -1.0"),
    ({"renorm": True, "renorm_clipping": {"rmax": "3"}}, ValueError,
     r"renorm_clipping\['rmax'\] must be a number"),
    ({"variables_collections": {"moving_avg": ["x"]}}, ValueError,
     r"variables_collections has unknown keys \['moving_avg'\]"),
    ({"variables_collections": "mine"}, TypeError, "variables_collections must be None, a list"),
    ({"param_regularizers": {"moving_mean": lambda v: v}}, ValueError,
     r"param_regularizers has unknown keys \['moving_mean'\]; accepted keys are "
     r"\('beta', 'gamma'\)"),
])
def test_dict_and_number_arguments_that_make_no_sense_are_refused(kwargs, error, message):
    with tf.Graph().as_default(), pytest.raises(error, match=message):
        slimnorm.batch_norm(tf.zeros([2, 4, 4, 3]), **kwargs)
    with tf.Graph().as_default():
        assert tf1.global_variables() == []


def test_sensible_dicts_are_accepted():
    """Keys of switched-off variables (one dict for a whole arg_scope) and tensor bounds."""
    with tf.Graph().as_default():
        slimnorm.batch_norm(
            tf.zeros([2, 4, 4, 3]), renorm=True,
            renorm_clipping={"rmax": tf.constant(3.0), "rmin": 1 / 3, "dmax": 5.0},
            variables_collections={"beta": None, "gamma": None, "moving_mean": ["stats"],
                                   "moving_variance": ["stats"]})
        assert len(tf1.get_collection("stats")) == 2


def test_renorm_during_warm_up_is_batch_norm():
    """Tensor clipping bounds (a schedule) at rmax = 1, dmax = 0: r = 1, d = 0."""
    from slimnorm import batch_renorm
    x = np.random.default_rng(5).normal(3, 2, size=(8, 5)).astype(np.float32)
    with tf.Graph().as_default():
        step = tf1.train.get_or_create_global_step()
        clipping = batch_renorm.clipping_schedule(step, warmup_steps=10, dmax_steps=20,
                                                  rmax_steps=30)
        init = {"moving_mean": tf1.constant_initializer(7.0)}
        y = slimnorm.batch_norm(tf.constant(x), renorm=True, renorm_clipping=clipping,
                                param_initializers=init)
        renorm_mean = slim.get_variables_by_name("renorm_mean")[0]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(renorm_mean.assign(np.full(5, 9.0, np.float32)))  # far from the batch
            warm = sess.run(y)
            sess.run(step.assign(30))
            relaxed = sess.run(y)
    plain = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    assert rel_err(warm, plain) < 1e-5
    assert rel_err(relaxed, plain) > 0.1     # after the warm-up d corrects towards 9


@pytest.mark.parametrize("kwargs,message", [
    ({"warmup_steps": 100, "dmax_steps": 50}, "dmax_steps=50 must be larger than warmup_steps=100"),
    ({"rmax": 0.5}, "rmax=0.5 must be >= 1"),
    ({"dmax": -1.0}, "dmax must be a number >= 0"),
])
def test_bad_renorm_schedules_are_refused(kwargs, message):
    from slimnorm import batch_renorm
    with tf.Graph().as_default(), pytest.raises(ValueError, match=message):
        batch_renorm.clipping_schedule(tf.constant(0), **kwargs)


@pytest.mark.parametrize("kwargs", [{"updates_collections": None},
                                    {"updates_collections": None, "renorm": True},
                                    {"fused": False, "batch_weights": "ones"}])
def test_half_precision_legacy_path_with_a_training_tensor(kwargs):
    """float16 variables (slim's legacy path) behind tf.cond; statistics stay float32."""
    x = np.random.default_rng(6).normal(2, 1, size=(2, 5, 3)).astype(np.float16)
    with tf.Graph().as_default():
        training = tf1.placeholder(tf.bool, [])
        kwargs = _in_graph(kwargs)
        if "batch_weights" in kwargs:
            kwargs["batch_weights"] = tf.ones([2])
        y = slimnorm.batch_norm(tf.constant(x), is_training=training, **kwargs)
        updates = tf1.get_collection(GK.UPDATE_OPS)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            train_out = sess.run([y] + updates, {training: True})[0]
            eval_out = sess.run(y, {training: False})
    assert train_out.dtype == eval_out.dtype == np.float16
    if not kwargs.get("renorm"):     # renorm's r, d start away from 1, 0: not plain BN
        x64 = x.astype(np.float64)
        expected = (x64 - x64.mean((0, 1))) / np.sqrt(x64.var((0, 1)) + 1e-3)
        assert rel_err(train_out, expected) < 2e-3
    assert np.all(np.isfinite(train_out)) and np.all(np.isfinite(eval_out))


# A seeded randomized comparison over the argument space (issue 22): ranks 2-5,
# both layouts, every slim path, float16/float32, training and eval; the
# configurations, slim's path rules and the numpy expectations are in
# tests/slim_batch_norm_configs.py.
@pytest.mark.parametrize("index", range(configs.RANDOM_CONFIGS))
def test_random_arguments_match_the_reference(index):
    config = configs.random_config(index)
    x, params, weights = configs.random_inputs(config)
    if config["epsilon"] == 0.0 and configs.values_per_channel(x, config) < 2:
        config["epsilon"] = 1e-3      # one value per channel: variance 0, epsilon 0
    kwargs = configs.batch_norm_kwargs(config, params, weights)
    out, stats, _, _ = configs.run_one_step(lambda: slimnorm.batch_norm(tf.constant(x), **kwargs),
                                     x, config)
    expected, mean, variance = configs.expected(config, x, params, weights)
    tolerance = configs.tolerance(config)
    assert rel_err(out, expected) < tolerance, config
    assert rel_err(stats["moving_mean"], mean) < tolerance, config
    assert rel_err(stats["moving_variance"], variance) < tolerance, config


@pytest.mark.parametrize("index", range(configs.RANDOM_CONFIGS))
def test_random_arguments_match_tf_slim_itself(index):
    """The same configurations through tf-slim 1.1.0's own batch_norm (tests/slim_oracle.py)."""
    import slim_oracle
    slim_oracle.require()
    config = configs.random_config(index)
    x, params, weights = configs.random_inputs(config)
    if config["epsilon"] == 0.0:
        config["epsilon"] = 1e-5
    kwargs = configs.batch_norm_kwargs(config, params, weights)
    ours = configs.run_one_step(lambda: slimnorm.batch_norm(tf.constant(x), **kwargs), x, config)
    slims = configs.run_one_step(lambda: slim_oracle.batch_norm(tf.constant(x), **configs.batch_norm_kwargs(
        config, params, weights)), x, config)
    tolerance = configs.tolerance(config)
    assert ours[2] == slims[2] and ours[3] == slims[3], config     # variables, update count
    assert rel_err(ours[0], slims[0]) < tolerance, config
    for name in ("moving_mean", "moving_variance"):
        assert rel_err(ours[1][name], slims[1][name]) < tolerance, (name, config)
