"""Should training and evaluation turn oneDNN on, or pin the thread pools?

    slimnorm bench config                  # ~15 min
    slimnorm bench config --rounds 1 --steps 50

`TF_ENABLE_ONEDNN_OPTS` is read when TensorFlow is imported, so each
configuration runs in a child process of this script. Configurations:
oneDNN unset (what TensorFlow does by default), =1 and =0 with the
session's intra/inter-op threads at TensorFlow's choice (0/0); and oneDNN
unset with intra/inter-op threads at 2/2, 2/1 and 1/1.
Children run in rounds, in a rotating order, so drift in the machine's load
hits every configuration alike.

Each child reports
  * what TensorFlow's log says about oneDNN ('on' / 'off');
  * train: ms per step of the small convnet with slimnorm batch norm
    (nets_factory 'small_convnet', 28x28x1, batch 128, momentum, the train
    op of slimnorm.training.create_train_op, batches fed from numpy as a
    training script does), after warm-up;
  * eval: ms per batch of 1000 in inference mode;
  * numerics: max |y - reference| of batch_norm's training output (fused and
    moments path) on N(0.5, 1) and 1e4 + N(0, 1) inputs, vs slimnorm.reference.

Prints a markdown table (ratios to the default configuration) and writes
JSON (--out, default runs/bench-config/bench_config.json).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from slimnorm.cli.common import ArgumentParser, int_at_least
from slimnorm.cli.help_format import DefaultsFormatter

# (label, TF_ENABLE_ONEDNN_OPTS or None for unset, intra, inter)
CONFIGS = (
    ("default", None, 0, 0),
    ("threads 2/2", None, 2, 2),
    ("threads 2/1", None, 2, 1),
    ("threads 1/1", None, 1, 1),
    ("oneDNN=1", "1", 0, 0),
    ("oneDNN=0", "0", 0, 0),
)
BATCH = 128
EVAL_BATCH = 1000


def _child(args):
    """Runs in the child: builds, times and checks; prints one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    import slimnorm
    from nets import nets_factory
    from slimnorm import reference, training

    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=args.intra,
                                      inter_op_parallelism_threads=args.inter)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (8, BATCH, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, (8, BATCH)).astype(np.int32)
    eval_images = rng.uniform(0, 1, (EVAL_BATCH, 28, 28, 1)).astype(np.float32)

    def timed(run, steps):
        start = time.perf_counter()
        for step in range(steps):
            run(step)
        return (time.perf_counter() - start) / steps * 1e3

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 28, 28, 1])
        y = tf.compat.v1.placeholder(tf.int32, [None])
        net = nets_factory.get_network_fn("small_convnet", 10, weight_decay=1e-4,
                                          is_training=True)
        logits, _ = net(x)
        tf.compat.v1.losses.sparse_softmax_cross_entropy(y, logits)
        train_op = training.create_train_op(
            tf.compat.v1.losses.get_total_loss(),
            tf.compat.v1.train.MomentumOptimizer(0.01, 0.9))
        eval_net = nets_factory.get_network_fn("small_convnet", 10, is_training=False)
        eval_logits, _ = eval_net(x, reuse=True)
        eval_op = tf.reduce_sum(eval_logits)
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        sess.run(init)

        def train(step):
            i = step % len(images)
            sess.run(train_op, {x: images[i], y: labels[i]})

        def evaluate(step):
            del step
            sess.run(eval_op, {x: eval_images})

        timed(train, args.warmup)
        train_ms = timed(train, args.steps)
        timed(evaluate, 2)
        eval_ms = timed(evaluate, max(3, args.steps // 20))

    errors = {}
    for label, offset in (("N(0.5,1)", 0.5), ("1e4+N(0,1)", 1e4)):
        data = (offset + rng.normal(size=(16, 7, 7, 32))).astype(np.float32)
        expected, _, _ = reference.batch_norm_train(data, epsilon=1e-3)
        for fused in (True, False):
            with tf.Graph().as_default():
                out = slimnorm.batch_norm(tf.constant(data), fused=fused, is_training=True)
                with tf.compat.v1.Session(config=config) as sess:
                    sess.run(tf.compat.v1.global_variables_initializer())
                    got = sess.run(out)
            key = "%s %s" % ("fused" if fused else "moments", label)
            errors[key] = float(np.max(np.abs(got - expected)))
    print("BENCH_CONFIG " + json.dumps({"train_ms": train_ms, "eval_ms": eval_ms,
                                        "max_abs_error": errors}), flush=True)


def _run_child(label, onednn, intra, inter, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    command = [sys.executable, "-m", "slimnorm.bench.session_config", "--child", "--intra", str(intra),
               "--inter", str(inter), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH_CONFIG ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("%s failed:\n%s" % (label, proc.stderr[-3000:]))
    result = json.loads(lines[-1][len("BENCH_CONFIG "):])
    said = re.search(r"oneDNN custom operations are (on|off)", proc.stderr)
    # TensorFlow logs a line only when oneDNN is on.
    result["onednn_log"] = said.group(1) if said else "not on (no log line)"
    return result


def main(argv=None, prog=None):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument("--rounds", type=int_at_least(1), default=3)
    parser.add_argument("--steps", type=int_at_least(1), default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int_at_least(0), default=20)
    parser.add_argument("--out", default=os.path.join("runs", "bench-config", "bench_config.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--intra", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--inter", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)

    runs = {c[0]: [] for c in CONFIGS}
    for round_ in range(args.rounds):
        shift = round_ % len(CONFIGS)
        for label, onednn, intra, inter in CONFIGS[shift:] + CONFIGS[:shift]:
            result = _run_child(label, onednn, intra, inter, args)
            runs[label].append(result)
            print("[bench_config] round %d %-22s oneDNN %s: train %.2f ms/step, eval %.1f ms"
                  % (round_ + 1, label, result["onednn_log"], result["train_ms"],
                     result["eval_ms"]), file=sys.stderr, flush=True)

    summary = []
    for label, onednn, intra, inter in CONFIGS:
        results = runs[label]
        summary.append({
            "config": label, "TF_ENABLE_ONEDNN_OPTS": onednn or "(unset)",
            "intra_op_threads": intra, "inter_op_threads": inter,
            "onednn_log": sorted({r["onednn_log"] for r in results}),
            "train_ms_median": statistics.median(r["train_ms"] for r in results),
            "eval_ms_median": statistics.median(r["eval_ms"] for r in results),
            "train_ms": [r["train_ms"] for r in results],
            "eval_ms": [r["eval_ms"] for r in results],
            "max_abs_error": {k: max(r["max_abs_error"][k] for r in results)
                              for k in results[0]["max_abs_error"]},
        })
    base = summary[0]
    keys = list(base["max_abs_error"])
    print("| configuration | oneDNN (log) | train ms/step | vs default | eval ms/batch "
          "| vs default | " + " | ".join("max abs err, " + k for k in keys) + " |")
    print("|---" * (6 + len(keys)) + "|")
    for s in summary:
        print("| %s | %s | %.2f | %.3fx | %.1f | %.3fx | %s |" % (
            s["config"], "/".join(s["onednn_log"]), s["train_ms_median"],
            s["train_ms_median"] / base["train_ms_median"], s["eval_ms_median"],
            s["eval_ms_median"] / base["eval_ms_median"],
            " | ".join("%.1e" % s["max_abs_error"][k] for k in keys)))
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"batch": BATCH, "eval_batch": EVAL_BATCH, "steps": args.steps,
                   "rounds": args.rounds, "configs": summary}, f, indent=1)
    return None


if __name__ == "__main__":
    main()
