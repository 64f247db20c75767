"""What synchronized batch norm costs: Inception V2 training steps on 2 towers, sync vs local.

Both graphs train Inception V2 (slim's, every conv batch-normalized) on 2
towers, /device:CPU:0 and /device:CPU:1 of one session, sharing the
variables, each on its own half of the batch: the tower losses are averaged,
the gradient taken with colocate_gradients_with_ops, a plain SGD step applied
and tower 0's moving-average updates run. The only difference:

  local  slimnorm.batch_norm: each tower normalizes with its own statistics
         (the fused kernel), what clones of a tf-slim model did;
  sync   the same with sync_replicas=True inside slimnorm.replica_group:
         the statistics of both towers' images.

Printed and written to JSON: median step times, the paired ratio sync/local
(interleaved rounds, `harness`), the machine's load average around the timed
rounds (the ratio moves with other processes' load), and the collectives one
step runs, read from the graph: all-reduces per replica (a forward and a backward one per
batch-norm layer) and the bytes each replica contributes to them.

    slimnorm bench sync-bn [--quick] [--out FILE]   # default runs/bench-sync-bn/sync_bn_bench.json
"""
import json
import os

import numpy as np
import tensorflow as tf
import tf_slim as slim

import slimnorm
from nets import inception_v2
from slimnorm.bench import harness
from slimnorm.cli.common import ArgumentParser, int_at_least
from slimnorm.cli.help_format import DefaultsFormatter

tf1 = tf.compat.v1
REPLICAS = 2
NUM_CLASSES = 1001
CASES = ("local", "sync")
FULL = dict(batch_per_replica=4, image_size=224, depth_multiplier=1.0, reps=10)
QUICK = dict(batch_per_replica=2, image_size=64, depth_multiplier=0.25, reps=3)


def build_step(case, batch_per_replica, image_size, depth_multiplier):
    """The train op of `case` in the current graph (module docstring)."""
    sync = case == "sync"
    batch = REPLICAS * batch_per_replica
    images = tf1.get_variable("images", [batch, image_size, image_size, 3], trainable=False,
                              initializer=tf1.random_uniform_initializer(-1.0, 1.0, seed=0))
    labels = tf.constant([i % NUM_CLASSES for i in range(batch)], tf.int32)
    updates = tf1.get_collection_ref(tf1.GraphKeys.UPDATE_OPS)
    losses = []
    for k, (part, part_labels) in enumerate(zip(tf.split(images, REPLICAS),
                                                tf.split(labels, REPLICAS))):
        before = list(updates)
        with tf.device("/device:CPU:%d" % k), tf1.name_scope("tower_%d" % k), \
                tf1.variable_scope(tf1.get_variable_scope(), reuse=True if k else None), \
                slimnorm.replica_group(size=REPLICAS, replica=k):
            with slim.arg_scope(inception_v2.inception_v2_arg_scope()), \
                    slim.arg_scope([slimnorm.batch_norm], sync_replicas=sync):
                logits, _ = inception_v2.inception_v2(part, NUM_CLASSES, is_training=True,
                                                      depth_multiplier=depth_multiplier)
            losses.append(tf1.losses.sparse_softmax_cross_entropy(
                part_labels, logits, loss_collection=None))
        if k:
            updates[:] = before
    total = tf.add_n(losses) / REPLICAS + tf1.losses.get_regularization_loss()
    variables = tf1.trainable_variables()
    grads = tf1.gradients(total, variables, colocate_gradients_with_ops=True)
    step = tf1.train.GradientDescentOptimizer(0.01).apply_gradients(zip(grads, variables))
    return tf.group(step, *tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))


def collectives_per_step(graph):
    """All-reduces one replica runs per step and the bytes it sends into them."""
    ops = [op for op in graph.get_operations() if op.type == "CollectiveReduceV2"]
    mine = [op for op in ops if op.device.endswith("CPU:0")]
    nbytes = sum(int(np.prod(op.inputs[0].shape.as_list())) * op.inputs[0].dtype.size
                 for op in mine)
    return {"all_reduces_per_replica": len(mine), "all_reduce_ops_in_graph": len(ops),
            "bytes_per_replica": nbytes,
            "forward": sum(op.inputs[0].dtype == tf.float64 for op in mine),
            "backward": sum(op.inputs[0].dtype != tf.float64 for op in mine)}


def run(settings):
    config = tf1.ConfigProto(device_count={"CPU": REPLICAS})
    sessions, runs, collectives = [], {}, {}
    try:
        for case in CASES:
            graph = tf.Graph()
            with graph.as_default():
                train_op = build_step(case, settings["batch_per_replica"],
                                      settings["image_size"], settings["depth_multiplier"])
                init = tf1.global_variables_initializer()
            collectives[case] = collectives_per_step(graph)
            sess = tf1.Session(graph=graph, config=config)
            sessions.append(sess)
            sess.run(init)
            runs[case] = sess.make_callable(train_op)
        load_before = os.getloadavg()[0]
        results = harness.measure(runs, reps=settings["reps"], warmup=2)
        load_after = os.getloadavg()[0]
    finally:
        for sess in sessions:
            sess.close()
    ratios = harness.paired_ratios(results, "local")
    return {"settings": settings, "replicas": REPLICAS,
            "median_step_ms": {c: results[c]["median_ms"] for c in CASES},
            "iqr_ms": {c: results[c]["iqr_ms"] for c in CASES},
            "sync_over_local": ratios["sync"],
            "sync_over_local_of_medians": harness.ratio_of_medians(results, "local")["sync"],
            "collectives": collectives["sync"],
            "collectives_local": collectives["local"]["all_reduces_per_replica"],
            "load_average_1min": {"before": load_before, "after": load_after}}


def report(result):
    s, c = result["settings"], result["collectives"]
    return "\n".join([
        "Inception V2 (depth %g), %d towers x %d images of %dx%d, training step:" % (
            s["depth_multiplier"], REPLICAS, s["batch_per_replica"], s["image_size"],
            s["image_size"]),
        "  local BN  %.0f ms (median of %d)" % (result["median_step_ms"]["local"], s["reps"]),
        "  sync BN   %.0f ms" % result["median_step_ms"]["sync"],
        "  sync / local: %.3f (paired), %.3f (ratio of medians)" % (
            result["sync_over_local"], result["sync_over_local_of_medians"]),
        "  load average (1 min) before and after the timed rounds: %.2f, %.2f" % (
            result["load_average_1min"]["before"], result["load_average_1min"]["after"]),
        "  collectives per step and replica: %d all-reduces (%d forward, %d backward), "
        "%d bytes" % (c["all_reduces_per_replica"], c["forward"], c["backward"],
                      c["bytes_per_replica"])])


def main(argv=None, prog=None):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument("--quick", action="store_true", help="small network and images")
    parser.add_argument("--reps", type=int_at_least(1), default=None, help="interleaved rounds")
    parser.add_argument("--out", default=os.path.join("runs", "bench-sync-bn", "sync_bn_bench.json"),
                        help="write the result as JSON here")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.reps:
        settings["reps"] = args.reps
    result = run(settings)
    print(report(result))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({k: v for k, v in result.items()}, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    main()
