"""batch_norm's graph semantics: variables, collections, updates, training flag, arg_scope."""
import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import reference as ref

GK = tf.compat.v1.GraphKeys


def _names(variables):
    return [v.op.name for v in variables]


def test_variable_names_and_collections():
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros([2, 4, 4, 3]), scale=True, scope="conv1/BatchNorm")
        # slim's default path (rank 4, UPDATE_OPS) creates gamma first
        names = ["conv1/BatchNorm/" + n for n in ("gamma", "beta", "moving_mean", "moving_variance")]
        assert _names(tf.compat.v1.global_variables()) == names
        assert _names(slim.get_model_variables()) == names
        assert _names(tf.compat.v1.trainable_variables()) == names[:2]
        assert tf.compat.v1.moving_average_variables() == []
        assert all(v.shape.as_list() == [3] for v in tf.compat.v1.global_variables())


def test_default_scope_is_batchnorm_and_uniquified():
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros([2, 3]))
        slimnorm.batch_norm(tf.zeros([2, 3]))
        assert _names(tf.compat.v1.global_variables())[::3] == ["BatchNorm/beta", "BatchNorm_1/beta"]


def test_update_op_names_and_count():
    with tf.Graph().as_default():
        with tf.compat.v1.variable_scope("conv"):
            slimnorm.batch_norm(tf.zeros([2, 4, 4, 3]))
        assert [op.name for op in tf.compat.v1.get_collection(GK.UPDATE_OPS)] == [
            "conv/BatchNorm/AssignMovingAvg", "conv/BatchNorm/AssignMovingAvg_1"]


@pytest.mark.parametrize("as_dict", [False, True])
def test_variables_collections_list_or_dict(as_dict):
    with tf.Graph().as_default():
        collections = {"beta": ["betas"], "moving_mean": ["stats"]} if as_dict else ["mine"]
        slimnorm.batch_norm(tf.zeros([2, 3]), scale=True, variables_collections=collections)
        if as_dict:
            assert _names(tf.compat.v1.get_collection("betas")) == ["BatchNorm/beta"]
            assert _names(tf.compat.v1.get_collection("stats")) == ["BatchNorm/moving_mean"]
        else:
            assert len(tf.compat.v1.get_collection("mine")) == 4


def test_outputs_collections_alias():
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.zeros([2, 3]), outputs_collections="ends", scope="bn")
        assert tf.compat.v1.get_collection("ends") == [y]
        assert y.aliases == ["bn"]


def test_param_regularizers_add_losses():
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros([2, 3]), scale=True,
                            param_regularizers={"gamma": slim.l2_regularizer(0.5)})
        losses = tf.compat.v1.get_collection(GK.REGULARIZATION_LOSSES)
        assert len(losses) == 1
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert np.isclose(sess.run(losses[0]), 0.5 * 3 / 2)  # scale * sum(gamma^2) / 2


def test_partitioner_partitions_params_not_moving_stats():
    with tf.Graph().as_default():
        x = tf.constant(np.random.default_rng(0).normal(size=(8, 6)), tf.float32)
        with tf.compat.v1.variable_scope("p", partitioner=tf.compat.v1.fixed_size_partitioner(2)):
            y = slimnorm.batch_norm(x, scale=True)
        names = _names(tf.compat.v1.global_variables())
        assert "p/BatchNorm/beta/part_0" in names and "p/BatchNorm/beta/part_1" in names
        assert "p/BatchNorm/moving_mean" in names
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            x_val, y_val = sess.run([x, y])
    np.testing.assert_allclose(y_val, ref.batch_norm_train(x_val)[0], atol=1e-5)


def _moving(scope="BatchNorm"):
    by_name = {v.op.name: v for v in tf.compat.v1.global_variables()}
    return by_name[scope + "/moving_mean"], by_name[scope + "/moving_variance"]


def test_moving_averages_follow_reference_and_approach_population():
    """N steps on N(3, 2^2): the averages equal the numpy EMA and near 3 and 4."""
    rng = np.random.default_rng(1)
    batches = [rng.normal(3, 2, size=(64, 5)).astype(np.float32) for _ in range(60)]
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 5])
        slimnorm.batch_norm(x, decay=0.9, fused=False)
        updates = tf.compat.v1.get_collection(GK.UPDATE_OPS)
        mm, mv = _moving()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for b in batches:
                sess.run(updates, {x: b})
            got_mean, got_var = sess.run([mm, mv])
    exp_mean, exp_var = np.zeros(5), np.ones(5)
    for b in batches:
        _, m, v = ref.batch_norm_train(b)
        exp_mean, exp_var = ref.moving_average(exp_mean, m, 0.9), ref.moving_average(exp_var, v, 0.9)
    np.testing.assert_allclose(got_mean, exp_mean, rtol=1e-5)
    np.testing.assert_allclose(got_var, exp_var, rtol=1e-5)
    np.testing.assert_allclose(got_mean, 3, atol=0.3)
    np.testing.assert_allclose(got_var, 4, rtol=0.15)


def test_zero_debias_moving_mean():
    rng = np.random.default_rng(2)
    batches = [rng.normal(5, 1, size=(16, 3)).astype(np.float32) for _ in range(3)]
    with tf.Graph().as_default():
        x = tf.compat.v1.placeholder(tf.float32, [16, 3])
        slimnorm.batch_norm(x, decay=0.99, zero_debias_moving_mean=True, scope="bn")
        names = _names(tf.compat.v1.global_variables())
        # Where TensorFlow's assign_moving_average put them, hence checkpoints.
        assert "bn/bn/moving_mean/biased" in names and "bn/bn/moving_mean/local_step" in names
        updates = tf.compat.v1.get_collection(GK.UPDATE_OPS)
        mm, _ = _moving("bn")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for b in batches:
                sess.run(updates, {x: b})
            got = sess.run(mm)
    expected = ref.zero_debiased_moving_average([ref.batch_norm_train(b)[1] for b in batches], 0.99)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(got > 4)  # without debiasing it would be about 3 * 0.01 * 5 = 0.15


def test_in_place_updates_vs_collection():
    x = np.random.default_rng(3).normal(2, 1, size=(8, 3)).astype(np.float32)
    for collections in (None, GK.UPDATE_OPS):
        with tf.Graph().as_default():
            y = slimnorm.batch_norm(tf.constant(x), decay=0.5, updates_collections=collections)
            mm, _ = _moving()
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                sess.run(y)
                after_output = sess.run(mm)
                n_updates = len(tf.compat.v1.get_collection(GK.UPDATE_OPS))
        if collections is None:
            assert n_updates == 0
            np.testing.assert_allclose(after_output, 0.5 * x.mean(0), rtol=1e-5)
        else:
            assert n_updates == 2
            np.testing.assert_array_equal(after_output, 0)  # the output alone does not update


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("collections", [None, GK.UPDATE_OPS])
def test_tensor_is_training(fused, collections):
    """Fed False: output uses the moving averages and they stay untouched."""
    x = np.random.default_rng(4).normal(2, 3, size=(6, 2, 2, 3)).astype(np.float32)
    with tf.Graph().as_default():
        flag = tf.compat.v1.placeholder(tf.bool, [])
        y = slimnorm.batch_norm(tf.constant(x), is_training=flag, decay=0.5, fused=fused,
                                updates_collections=collections)
        fetch = [y] + tf.compat.v1.get_collection(GK.UPDATE_OPS)
        mm, mv = _moving()
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            y_eval = sess.run(fetch, {flag: False})[0]
            assert np.all(sess.run(mm) == 0) and np.all(sess.run(mv) == 1)
            y_train = sess.run(fetch, {flag: True})[0]
            mean_after = sess.run(mm)
    np.testing.assert_allclose(y_eval, ref.batch_norm_inference(x, 0, 1, epsilon=1e-3), atol=1e-5)
    np.testing.assert_allclose(y_train, ref.batch_norm_train(x)[0], atol=1e-5)
    np.testing.assert_allclose(mean_after, 0.5 * x.mean((0, 1, 2)), rtol=1e-5)


def test_is_training_false_builds_no_statistics_or_updates():
    with tf.Graph().as_default() as g:
        slimnorm.batch_norm(tf.zeros([2, 4, 4, 3]), is_training=False)
        assert tf.compat.v1.get_collection(GK.UPDATE_OPS) == []
        types = {op.type for op in g.get_operations()}
        assert not types & {"If", "StatelessIf", "Switch", "Mean", "AssignSubVariableOp"}


def test_python_true_and_constant_tensor_build_no_cond():
    for flag in (True, tf.constant(True)):
        with tf.Graph().as_default() as g:
            slimnorm.batch_norm(tf.zeros([2, 4, 4, 3]), is_training=flag)
            types = {op.type for op in g.get_operations()}
            assert not types & {"If", "StatelessIf", "Switch"}


def test_reuse_shares_variables():
    with tf.Graph().as_default():
        a = slimnorm.batch_norm(tf.ones([2, 3]), scope="shared", scale=True)
        b = slimnorm.batch_norm(tf.ones([4, 3]) * 2, scope="shared", scale=True, reuse=True)
        assert len(tf.compat.v1.global_variables()) == 4
        assert a.shape.as_list() == [2, 3] and b.shape.as_list() == [4, 3]


def test_arg_scope_two_layer_net_trains_and_evaluates():
    """The point of slimnorm: a slim net with normalizer_fn=batch_norm, as before."""
    rng = np.random.default_rng(5)
    images = rng.normal(size=(32, 8, 8, 1)).astype(np.float32)
    labels = (images.mean((1, 2, 3)) > 0).astype(np.int64)

    def net(x, training, reuse=None):
        with slim.arg_scope([slim.conv2d], normalizer_fn=slimnorm.batch_norm,
                            normalizer_params={"is_training": training, "decay": 0.9, "scale": True}):
            h = slim.conv2d(x, 8, [3, 3], scope="conv1", reuse=reuse)
            h = slim.conv2d(h, 8, [3, 3], scope="conv2", reuse=reuse)
        return slim.fully_connected(tf.reduce_mean(h, [1, 2]), 2, activation_fn=None,
                                    scope="logits", reuse=reuse)

    with tf.Graph().as_default():
        logits = net(tf.constant(images), True)
        eval_logits = net(tf.constant(images), False, reuse=True)
        assert len(tf.compat.v1.get_collection(GK.UPDATE_OPS)) == 4
        assert "conv1/BatchNorm/moving_mean" in _names(tf.compat.v1.global_variables())
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        with tf.control_dependencies(tf.compat.v1.get_collection(GK.UPDATE_OPS)):
            train_op = tf.compat.v1.train.AdamOptimizer(0.01).minimize(loss)
        eval_loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, eval_logits)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            first = sess.run(loss)
            for _ in range(80):
                sess.run(train_op)
            last, last_eval = sess.run([loss, eval_loss])
            mm = sess.run(_moving("conv1/BatchNorm")[0])
    assert last < 0.5 * first
    assert last_eval < first  # eval mode with moving averages also learned the task
    assert np.any(mm != 0)


def test_batch_norm_layer_seed_recipe():
    x = np.random.default_rng(6).normal(1, 2, size=(8, 4, 4, 3)).astype(np.float32)
    with tf.Graph().as_default():
        flag = tf.compat.v1.placeholder(tf.bool, [])
        y = slimnorm.batch_norm_layer(tf.constant(x), flag, scope="bn1")
        assert _names(tf.compat.v1.global_variables()) == [
            "bn1/beta", "bn1/gamma", "bn1/moving_mean", "bn1/moving_variance"]
        assert tf.compat.v1.get_collection(GK.UPDATE_OPS) == []
        mm, mv = _moving("bn1")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            y_train = sess.run(y, {flag: True})
            got_mean, got_var = sess.run([mm, mv])
    y_ref, mean, var = ref.batch_norm_train(x)
    np.testing.assert_allclose(y_train, y_ref, atol=1e-5)
    np.testing.assert_allclose(got_mean, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(got_var, 0.9 + 0.1 * var, rtol=1e-5)  # biased, as tf.nn.moments
