"""Synchronized batch norm: replicas with unequal batches equal batch norm on their concatenation.

The replicas run in fresh processes (tests/sync_replicas_runner.py): 2 clones
on 2 logical CPU devices of one process, and 2 worker processes on loopback.
Each is fed batches of 3 and 5; the reference is single-device batch norm
(TensorFlow's kernels through slimnorm.batch_norm without sync) on the batch
of 8, and for the outputs and moving averages also the numpy reference.
"""
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import reference as ref
from tests import sync_replicas_runner as runner
from tests.script_helpers import ROOT, script_env

tf1 = tf.compat.v1
RUNNER = os.path.join(ROOT, "tests", "sync_replicas_runner.py")
TOL = {"float32": 1e-5, "float16": 2e-3}
TIMEOUT = 240


def single_device(case):
    """Outputs, gradients and moving averages of plain batch norm on the whole batch."""
    x, weights, gamma, beta = runner.case_inputs(case)
    _, data_format, fused, _, _ = runner.CASES[case]
    const = tf1.constant_initializer
    with tf.Graph().as_default():
        inputs = tf.constant(x)
        y = slimnorm.batch_norm(inputs, scale=True, decay=runner.DECAY, fused=fused,
                                data_format=data_format, scope="bn",
                                param_initializers={"gamma": const(gamma), "beta": const(beta)})
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        variables = [slim.get_variables_by_name(n)[0] for n in ("gamma", "beta")]
        dx, dgamma, dbeta = tf.gradients(loss, [inputs] + variables)
        with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
            moving = [tf.identity(slim.get_variables_by_name(n)[0].read_value())
                      for n in ("moving_mean", "moving_variance")]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run({"y": y, "dx": dx, "dgamma": dgamma, "dbeta": dbeta,
                            "moving_mean": moving[0], "moving_variance": moving[1]})
    return out


def numpy_reference(case):
    """Outputs and moving averages from the formulas (float64)."""
    x, _, gamma, beta = runner.case_inputs(case)
    shape, data_format, fused, _, _ = runner.CASES[case]
    rank = len(shape) + 1
    kernel = fused is None and rank in (2, 4)
    epsilon = 1e-3
    y, mean, variance = ref.batch_norm_train(x, gamma, beta, epsilon, data_format)
    count = x.size / len(gamma)
    stored = ref.unbiased_variance(variance, count) if kernel else variance
    return {"y": y,
            "moving_mean": runner.DECAY * 0.0 + (1 - runner.DECAY) * mean.ravel(),
            "moving_variance": runner.DECAY * 1.0 + (1 - runner.DECAY) * np.ravel(stored)}


def err(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12)


def _run(args, out, timeout=TIMEOUT):
    proc = subprocess.run([sys.executable, RUNNER] + args + [out], capture_output=True,
                          text=True, env=script_env(), cwd=ROOT, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    return _run(["clones"], str(tmp_path_factory.mktemp("sync") / "clones.npz"))


def _compare(results, case, replica_moving):
    expected = single_device(case)
    formulas = numpy_reference(case)
    tol = TOL[runner.CASES[case][3]]
    n = len(runner.BATCHES)
    concat = {name: np.concatenate([results["%s/%s/%d" % (case, name, k)] for k in range(n)])
              for name in ("y", "dx")}
    summed = {name: sum(results["%s/%s/%d" % (case, name, k)] for k in range(n))
              for name in ("dgamma", "dbeta")}
    assert err(concat["y"], expected["y"]) < tol
    assert err(concat["y"], formulas["y"]) < tol
    assert err(concat["dx"], expected["dx"]) < tol
    assert np.abs(expected["dx"]).max() > 1e-2  # a zero gradient would match trivially
    for name in ("dgamma", "dbeta"):
        assert err(summed[name], expected[name]) < tol, name
    for name in ("moving_mean", "moving_variance"):
        for moving in replica_moving(name):
            assert err(moving, expected[name]) < tol, name
            assert err(moving, formulas[name]) < tol, name


@pytest.mark.parametrize("case", sorted(set(runner.CASES) - {"large_mean"}))
def test_clones_equal_batch_norm_on_the_concatenated_batch(clones, case):
    _compare(clones, case, lambda name: [clones["%s/%s" % (case, name)]])


def test_large_mean_inputs_keep_their_statistics(clones):
    """1e4 + N(0, 4) in float32: one-pass float32 sums of squares would lose the variance.

    The moving statistics match the float64 formulas to 1e-5. The outputs
    can only match to the inputs' own precision: a float32 value near 1e4
    is known to 5e-4, a quarter of a thousandth of the spread.
    """
    formulas = numpy_reference("large_mean")
    for name in ("moving_mean", "moving_variance"):
        assert err(clones["large_mean/" + name], formulas[name]) < 1e-5, name
    y = np.concatenate([clones["large_mean/y/%d" % k] for k in range(len(runner.BATCHES))])
    assert err(y, formulas["y"]) < 1e-4


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sync_workers")
    ports = _free_ports(2)
    procs, outs = [], []
    try:
        for task in range(2):
            outs.append(str(tmp / ("worker%d.npz" % task)))
            with open(tmp / ("worker%d.log" % task), "w") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, RUNNER, "worker", outs[-1], str(task)]
                    + [str(p) for p in ports], stdout=log, stderr=subprocess.STDOUT,
                    env=script_env(), cwd=ROOT))
        deadline = time.time() + TIMEOUT
        for task, proc in enumerate(procs):
            proc.wait(timeout=max(1.0, deadline - time.time()))
            log = (tmp / ("worker%d.log" % task)).read_text()
            assert proc.returncode == 0, log[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = {}
    for out in outs:
        results.update(np.load(out))
    return results


@pytest.mark.parametrize("case", runner.WORKER_CASES)
def test_workers_equal_batch_norm_on_the_concatenated_batch(workers, case):
    """Each worker has its own moving averages: both equal the single-device ones."""
    _compare(workers, case, lambda name: [workers["%s/%s/%d" % (case, name, k)]
                                          for k in range(2)])


@pytest.mark.parametrize("kind,expected", [
    ("op_timeout", ["TimeoutError", "clone_0/bn/CrossReplicaSum", "Collective has timed out"]),
    ("step_timeout", ["TimeoutError", "step time-out is 3 s", "sync_replicas=True",
                      "a replica that never reached its collectives"]),
    # Which replica reports the other's shape depends on which arrives first.
    ("mismatch", ["InvalidArgumentError", "CrossReplicaSum", "Shape mismatch", "[3,4]", "[3,5]"]),
])
def test_missing_replica_or_other_channels_fail_clearly(tmp_path, kind, expected):
    """An error that says what happened, after the 3 s time-out, not a hang."""
    start = time.time()
    proc = subprocess.run([sys.executable, RUNNER, kind], capture_output=True, text=True,
                          env=script_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ERROR"), proc.stdout
    for text in expected:
        assert text in proc.stdout
    assert time.time() - start < 100


def _plain_and_sync(x, build_sync, **kwargs):
    """(outputs, moving mean, d sum(y * w)/dx) of plain batch norm and of build_sync's."""
    weights = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
    results = []
    for sync in (False, True):
        with tf.Graph().as_default():
            inputs = tf.constant(x)
            y = build_sync(inputs, **kwargs) if sync else slimnorm.batch_norm(inputs, **kwargs)
            (dx,) = tf.gradients(tf.reduce_sum(y * weights), [inputs])
            with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
                mean = tf.identity(slim.get_variables_by_name("moving_mean")[0].read_value())
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                results.append(sess.run([y, mean, dx]))
    return results


def test_group_of_one_replica_is_plain_batch_norm():
    x = np.random.default_rng(3).normal(1, 2, (4, 3, 3, 2)).astype(np.float32)

    def build(inputs, **kwargs):
        with slimnorm.replica_group(size=1, replica=0):
            return slimnorm.batch_norm(inputs, sync_replicas=True, **kwargs)

    plain, sync = _plain_and_sync(x, build, scale=True, decay=0.5)
    assert np.abs(plain[2]).max() > 1e-2  # a zero gradient would match trivially
    for a, b in zip(plain, sync):
        assert err(b, a) < 1e-5


def test_inference_needs_no_group():
    x = np.random.default_rng(4).normal(size=(2, 5)).astype(np.float32)
    with tf.Graph().as_default():
        y = slimnorm.batch_norm(tf.constant(x), is_training=False, sync_replicas=True)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            np.testing.assert_allclose(sess.run(y), x / np.sqrt(1 + 1e-3), rtol=1e-6)


@pytest.mark.parametrize("kwargs,error,words", [
    ({}, ValueError, ["sync_replicas=True", "replica_group"]),
    ({"sync_replicas": 1}, TypeError, ["sync_replicas", "True or False"]),
    ({"renorm": True}, ValueError, ["sync_replicas=True", "renorm"]),
    ({"virtual_batch_size": 2}, ValueError, ["sync_replicas=True", "virtual_batch_size"]),
])
def test_bad_arguments_fail_at_build_time(kwargs, error, words):
    kwargs = dict({"sync_replicas": True}, **kwargs)
    with tf.Graph().as_default():
        with pytest.raises(error) as raised:
            slimnorm.batch_norm(tf.zeros([4, 3]), **kwargs)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("size,replica", [(2, 2), (0, 0), (2, -1)])
def test_replica_group_refuses_bad_indices(size, replica):
    with pytest.raises(ValueError, match="replica|size"):
        with slimnorm.replica_group(size=size, replica=replica):
            pass


def _collective_keys(graph):
    keys = []
    for op in graph.get_operations():
        if op.type == "CollectiveReduceV2":
            key = tf.get_static_value(op.inputs[3])  # instance_key
            keys.append((op.device, op.name, int(key)))
    return keys


def test_clones_share_keys_and_a_reused_layer_gets_new_ones():
    """Replica k's n-th call of a layer has the same instance key in every replica."""
    with tf.Graph().as_default() as graph:
        for k in range(2):
            with tf.device("/device:CPU:%d" % k), tf1.name_scope("clone_%d" % k), \
                    tf1.variable_scope("", reuse=tf1.AUTO_REUSE), \
                    slimnorm.replica_group(size=2, replica=k):
                y = slimnorm.batch_norm(tf.ones([2, 3]), scope="bn", sync_replicas=True)
                slimnorm.batch_norm(y, scope="bn", sync_replicas=True)  # reused
        keys = _collective_keys(graph)
    assert len(keys) == 4
    by_clone = [[key for device, _, key in keys if device.endswith(str(k))] for k in range(2)]
    assert by_clone[0] == by_clone[1]
    assert len(set(by_clone[0])) == 2


def test_nets_pass_sync_replicas_through_normalizer_params():
    """One line turns it on for a network: a forward all-reduce per batch-norm layer."""
    from nets import nets_factory
    network_fn = nets_factory.get_network_fn('small_convnet', 10, normalizer='batch',
                                             normalizer_params={'sync_replicas': True})
    with tf.Graph().as_default() as graph:
        with slimnorm.replica_group(size=2, replica=0):
            network_fn(tf.zeros([2, 28, 28, 1]), is_training=True)
        layers = {op.name.rsplit("/", 1)[0] for op in graph.get_operations()
                  if op.name.endswith("moving_mean")}
        assert len(_collective_keys(graph)) == len(layers) > 3


def test_nets_refuse_sync_replicas_for_other_normalizers():
    from nets import normalizers
    with pytest.raises(ValueError, match="sync_replicas=True is an argument of batch norm"):
        normalizers.normalizer_fn_and_params('group', normalizer_params={'sync_replicas': True})
