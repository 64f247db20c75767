"""slimnorm.legacy.patch: slimnorm's norms inside tf-slim, TF 2.21 breakages repaired.

Every test leaves tf-slim unpatched (autouse fixture), so the rest of the
suite sees tf-slim as installed.
"""
import importlib
import sys
import types
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim
from tensorflow.python.framework import indexed_slices, ops
from tensorflow.python.ops import array_ops, cond, control_flow_case, control_flow_ops

import slimnorm
from slimnorm import reference
from slimnorm.legacy import patch as tf_slim_patch
from slimnorm.legacy import repairs
from slimnorm.legacy.patch import patch_tf_slim, patched_tf_slim, unpatch_tf_slim

from graph_utils import rel_err

# Every module of tf-slim 1.1.0 that exposes each norm after `import tf_slim`.
EXPOSED_IN = {
    "batch_norm": ("tf_slim", "tf_slim.layers", "tf_slim.layers.layers"),
    "layer_norm": ("tf_slim", "tf_slim.layers", "tf_slim.layers.layers"),
    "group_norm": ("tf_slim", "tf_slim.layers", "tf_slim.layers.normalization"),
    "instance_norm": ("tf_slim", "tf_slim.layers", "tf_slim.layers.normalization"),
}


@pytest.fixture(autouse=True)
def unpatched_afterwards():
    yield
    unpatch_tf_slim()


def _snapshot():
    return {(m, n): getattr(sys.modules[m], n) for n, modules in EXPOSED_IN.items() for m in modules}


def test_norms_replaced_on_every_module_that_exposes_them():
    before = _snapshot()
    assert slim.layers is sys.modules["tf_slim.layers.layers"]  # the star import the patch must see past
    patch_tf_slim(warn_captured=False)
    for name, modules in EXPOSED_IN.items():
        for module in modules:
            assert getattr(sys.modules[module], name) is getattr(slimnorm, name), (module, name)
    originals = set(map(id, before.values()))
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("tf_slim"):
            held = [n for n, v in vars(module).items() if id(v) in originals]
            assert not held, "%s still holds tf-slim's %s" % (module_name, held)


def test_idempotent_returns_changes_and_unpatch_restores():
    before = _snapshot()
    made = patch_tf_slim(warn_captured=False)
    assert {(c.module, c.name) for c in made} >= set(before)
    assert all(getattr(sys.modules[c.module], c.name) is c.new for c in made)
    assert patch_tf_slim(warn_captured=False) == ()
    assert tf_slim_patch.is_patched()
    undone = unpatch_tf_slim()
    assert len(undone) == len(made)
    assert all(getattr(sys.modules[m], n) is f for (m, n), f in before.items())
    assert not tf_slim_patch.is_patched()
    assert unpatch_tf_slim() == ()


def test_context_manager_undoes_only_its_own_changes():
    before = _snapshot()
    with patched_tf_slim(warn_captured=False) as made:
        assert made and slim.batch_norm is slimnorm.batch_norm
    assert _snapshot() == before
    patch_tf_slim(warn_captured=False)
    with patched_tf_slim(warn_captured=False) as made:
        assert made == ()
    assert slim.batch_norm is slimnorm.batch_norm  # the outer patch stays


def test_unknown_tf_slim_version_is_refused_with_nothing_changed(monkeypatch):
    before = _snapshot()
    monkeypatch.setattr(tf_slim_patch, "tf_slim_version", lambda: "1.2.0")
    with pytest.raises(tf_slim_patch.UnsupportedTfSlimVersion, match=r"'1\.2\.0'.*1\.1\.0"):
        patch_tf_slim()
    assert _snapshot() == before


def test_moved_tensorflow_names_reach_tf_slim_not_tensorflow():
    patch_tf_slim(warn_captured=False)
    decoder = sys.modules["tf_slim.data.tfexample_decoder"]
    assert decoder.control_flow_ops.case is control_flow_case.case
    assert decoder.control_flow_ops.cond is cond.cond
    assert decoder.control_flow_ops.repaired_original is control_flow_ops
    assert sys.modules["tf_slim.learning"].ops.IndexedSlices is indexed_slices.IndexedSlices
    assert decoder.ops.get_default_graph is ops.get_default_graph  # everything else forwards
    # TensorFlow's own modules are as TensorFlow ships them.
    assert not hasattr(control_flow_ops, "case") and not hasattr(array_ops, "stack")
    assert not hasattr(ops, "IndexedSlices")


def test_every_moved_name_resolves_and_is_really_missing():
    for module_name, names in repairs.MOVED.items():
        added = repairs.missing_names(importlib.import_module(module_name))
        assert set(added) == set(names), module_name  # a name TF still has would be shadowed
        assert all(callable(value) for value in added.values())


def test_arg_scope_on_slim_batch_norm_after_patch_reaches_slimnorm():
    patch_tf_slim(warn_captured=False)
    x = np.random.RandomState(0).randn(4, 3, 3, 2).astype(np.float32) * 3 + 1
    with tf.Graph().as_default():
        with slim.arg_scope([slim.batch_norm], decay=0.5, scale=True,
                            param_initializers={"gamma": tf.compat.v1.constant_initializer(2.0)}):
            y = slim.batch_norm(tf.constant(x), is_training=True, scope="bn")
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            out, _ = sess.run([y, updates])
            moving_mean = sess.run(variables["bn/moving_mean"])
    expected, mean, _ = reference.batch_norm_train(x, gamma=np.full(2, 2.0), beta=np.zeros(2))
    assert "bn/gamma" in variables  # scale=True came from the arg scope
    assert rel_err(out, expected) < 1e-4  # gamma 2.0 came from the arg scope
    assert rel_err(moving_mean, reference.moving_average(np.zeros(2), mean, 0.5)) < 1e-5


def test_conv2d_normalizer_fn_is_slimnorm_through_every_name():
    patch_tf_slim(warn_captured=False)
    layers_package = sys.modules["tf_slim.layers"]
    with tf.Graph().as_default():
        images = tf.zeros([2, 4, 4, 3])
        with slim.arg_scope([layers_package.batch_norm], scale=True):
            slim.conv2d(images, 4, [1, 1], normalizer_fn=slim.layers.batch_norm, scope="conv")
        names = sorted(v.op.name for v in tf.compat.v1.global_variables())
    assert names == ["conv/BatchNorm/beta", "conv/BatchNorm/gamma", "conv/BatchNorm/moving_mean",
                     "conv/BatchNorm/moving_variance", "conv/weights"]


def test_warns_about_references_captured_before_the_patch(monkeypatch):
    user = types.ModuleType("user_nets_for_patch_test")
    user.bn = slim.batch_norm
    user.V3 = dict(defaults={(slim.batch_norm,): {"center": True}}, spec=[slim.group_norm])
    monkeypatch.setitem(sys.modules, user.__name__, user)
    with pytest.warns(tf_slim_patch.CapturedOriginalWarning) as caught:
        patch_tf_slim()
    message = str(caught[0].message)
    assert "user_nets_for_patch_test.bn" in message
    assert "user_nets_for_patch_test.V3['defaults'] key (batch_norm)" in message
    assert "user_nets_for_patch_test.V3['spec'][0]" in message
    unpatch_tf_slim()
    user.bn = user.V3 = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", tf_slim_patch.CapturedOriginalWarning)
        patch_tf_slim()  # nothing captured: no warning


def test_assign_from_checkpoint_restores_partitioned_variables(tmp_path):
    """tf-slim's own version raises IndexError here under NumPy 2 (a list of slices)."""
    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    path = str(tmp_path / "model.ckpt")
    partitioner = tf.compat.v1.fixed_size_partitioner(3)
    with tf.Graph().as_default():
        var = tf.compat.v1.get_variable("w", initializer=tf.constant(values), partitioner=partitioner)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(sess, path)
    patch_tf_slim(warn_captured=False)
    assert slim.assign_from_checkpoint is sys.modules["tf_slim.ops.variables"].assign_from_checkpoint
    with tf.Graph().as_default():
        var = tf.compat.v1.get_variable("w", [6, 2], initializer=tf.compat.v1.zeros_initializer(),
                                        partitioner=partitioner)
        parts = list(var)
        assign_op, feed_dict = slim.assign_from_checkpoint(path, parts)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(assign_op, feed_dict)
            restored = np.concatenate(sess.run(parts))
        with pytest.raises(ValueError, match=r"missing variable \[nope\]"):
            slim.assign_from_checkpoint(path, {"nope": parts[0]})
    np.testing.assert_array_equal(restored, values)
