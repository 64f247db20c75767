"""Runs synchronized batch norm on several replicas in a fresh process; saves what it computed.

Used by tests/test_sync_batch_norm.py, which compares the results with
single-device batch norm on the concatenated batch. Two modes:

    python tests/sync_replicas_runner.py clones OUT.npz            # 2 logical CPU devices
    python tests/sync_replicas_runner.py worker OUT.npz TASK PORT0 PORT1   # one of 2 workers
    python tests/sync_replicas_runner.py op_timeout|step_timeout|mismatch  # prints the error

Logical devices must be configured before TensorFlow initializes, hence a
process of its own. Each case builds replica k on its device with batch
`BATCHES[k]` of `case_inputs(case)`, computes per replica the outputs and
tf.gradients of sum(y * weights) with respect to the inputs, gamma and beta,
runs one replica's update ops, and saves everything under `<case>/...`.
"""
import os
import sys

import numpy as np

BATCHES = (3, 5)
DECAY = 0.5
# name -> (shape of one example, data_format, fused, input dtype, mean of the inputs)
CASES = {
    "nhwc_fused": ((3, 3, 4), "NHWC", None, "float32", 1.0),
    "nchw_fused": ((4, 3, 3), "NCHW", None, "float32", 1.0),
    "rank2_fused": ((6,), "NHWC", None, "float32", 1.0),
    "nhwc_moments": ((3, 3, 4), "NHWC", False, "float32", 1.0),
    "rank3_moments": ((5, 4), "NHWC", None, "float32", 1.0),
    "float16": ((3, 3, 4), "NHWC", None, "float16", 1.0),
    "large_mean": ((3, 3, 4), "NHWC", None, "float32", 1e4),
    "training_tensor": ((3, 3, 4), "NHWC", None, "float32", 1.0),  # is_training: a tensor
}
WORKER_CASES = ("nhwc_fused", "nchw_fused")


def case_inputs(case):
    """Inputs (global batch of sum(BATCHES)), loss weights, gamma and beta of `case`."""
    shape, data_format, _, dtype, mean = CASES[case]
    rng = np.random.default_rng(list(CASES).index(case))
    total = sum(BATCHES)
    x = (mean + rng.normal(0.0, 2.0, (total,) + shape)).astype(dtype)
    weights = rng.normal(size=x.shape).astype(np.float32)
    channels = shape[0] if data_format == "NCHW" and len(shape) > 1 else shape[-1]
    gamma = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    beta = rng.normal(size=channels).astype(np.float32)
    return x, weights, gamma, beta


def split(array):
    return np.split(array, np.cumsum(BATCHES)[:-1])


def build_replica(case, k, x, weights, gamma, beta):
    """Replica k's layer, gradients and update ops (inside its group and device)."""
    import tensorflow as tf
    import tf_slim as slim

    import slimnorm

    _, data_format, fused, _, _ = CASES[case]
    const = tf.compat.v1.constant_initializer
    inputs = tf.constant(x)
    training = True
    if case == "training_tensor":
        training = tf.compat.v1.placeholder_with_default(True, [])
    y = slimnorm.batch_norm(inputs, scale=True, decay=DECAY, fused=fused, is_training=training,
                            data_format=data_format, sync_replicas=True, scope="bn",
                            param_initializers={"gamma": const(gamma), "beta": const(beta)})
    loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    gamma_v, beta_v = slim.get_variables_by_name("gamma")[0], slim.get_variables_by_name("beta")[0]
    dx, dgamma, dbeta = tf.gradients(loss, [inputs, gamma_v, beta_v])
    return {"y": y, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def _moving(update_ops):
    import tensorflow as tf
    import tf_slim as slim
    with tf.control_dependencies(update_ops):
        return {name: tf.identity(slim.get_variables_by_name(name)[0].read_value())
                for name in ("moving_mean", "moving_variance")}


def run_clones(out_path):
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * len(BATCHES))
    import slimnorm
    results = {}
    for case in CASES:
        x, weights, gamma, beta = case_inputs(case)
        with tf.Graph().as_default():
            fetches = []
            for k, (xk, wk) in enumerate(zip(split(x), split(weights))):
                with tf.device("/device:CPU:%d" % k), tf.compat.v1.name_scope("clone_%d" % k), \
                        tf.compat.v1.variable_scope("", reuse=True if k else None), \
                        slimnorm.replica_group(size=len(BATCHES), replica=k):
                    before = len(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))
                    fetches.append(build_replica(case, k, xk, wk, gamma, beta))
                    updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
                    if k == 0:
                        clone0_updates = updates[before:]
            moving = _moving(clone0_updates)
            with tf.compat.v1.Session() as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                values, moving_values = sess.run([fetches, moving])
        for k, value in enumerate(values):
            for name, array in value.items():
                results["%s/%s/%d" % (case, name, k)] = array
        for name, array in moving_values.items():
            results["%s/%s" % (case, name)] = array
    np.savez(out_path, **results)


def run_worker(out_path, task, ports):
    import tensorflow as tf

    import slimnorm
    from slimnorm import replicas
    cluster = tf.train.ClusterSpec({"worker": ["127.0.0.1:%d" % p for p in ports]})
    config = replicas.session_config(timeout_seconds=120, leader=replicas.DEFAULT_LEADER)
    server = tf.distribute.Server(cluster, job_name="worker", task_index=task, config=config,
                                  start=True)
    results = {}
    for case in WORKER_CASES:
        x, weights, gamma, beta = case_inputs(case)
        with tf.Graph().as_default():
            with tf.device("/job:worker/task:%d" % task), \
                    slimnorm.replica_group(size=len(ports), replica=task):
                fetches = build_replica(case, task, split(x)[task], split(weights)[task],
                                        gamma, beta)
                moving = _moving(tf.compat.v1.get_collection(
                    tf.compat.v1.GraphKeys.UPDATE_OPS))
            with tf.compat.v1.Session(server.target, config=config) as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                values, moving_values = sess.run([fetches, moving])
        for name, array in values.items():
            results["%s/%s/%d" % (case, name, task)] = array
        for name, array in moving_values.items():
            results["%s/%s/%d" % (case, name, task)] = array
    np.savez(out_path, **results)


def run_failure(kind):
    """A replica that never comes, or replicas with 4 and 5 channels (mismatch).

    The missing replica is noticed by the op time-out (op_timeout) or by the
    step time-out of the session (step_timeout).

    The mismatch calls the layer's training computation directly: one graph
    cannot hold one layer's variables in two shapes, as two workers building
    different models would.
    """
    import tensorflow as tf

    import slimnorm
    from slimnorm import replicas, sync_batch_norm
    outputs = []
    with tf.Graph().as_default():
        for k, channels in enumerate((4, 5) if kind == "mismatch" else (4,)):
            with tf.device("/device:CPU:%d" % k), tf.compat.v1.name_scope("clone_%d" % k), \
                    slimnorm.replica_group(size=2, replica=k, timeout_seconds=(
                        3 if kind == "op_timeout" else None)) as group:
                x = tf.ones([2, 3, 3, channels])
                if kind != "mismatch":
                    outputs.append(slimnorm.batch_norm(x, scope="bn", sync_replicas=True))
                else:
                    outputs.append(sync_batch_norm.train(
                        x, group=group, seed=replicas.layer_key(group, "bn"), axis=3,
                        dtype=tf.float32, beta=None, gamma=None, epsilon=1e-3, fused=True,
                        data_format="NHWC")[0])
        step_timeout = 3 if kind == "step_timeout" else 30
        # An explicit ConfigProto does not see the logical devices: ask for 2.
        config = replicas.session_config(tf.compat.v1.ConfigProto(device_count={"CPU": 2}),
                                         timeout_seconds=step_timeout)
        with tf.compat.v1.Session(config=config) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            try:
                with replicas.explain_timeouts(step_timeout):
                    sess.run(outputs)
            except tf.errors.OpError as error:
                print("ERROR %s: %s" % (type(error).__name__, error.message), flush=True)
            except TimeoutError as error:
                print("ERROR %s: %s" % (type(error).__name__, error), flush=True)


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    if argv[1] == "clones":
        run_clones(argv[2])
    elif argv[1] in ("op_timeout", "step_timeout", "mismatch"):
        run_failure(argv[1])
    else:
        run_worker(argv[2], int(argv[3]), [int(p) for p in argv[4:]])
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv)
