"""Batch renorm with and without the paper's warm-up, against batch norm, on digits.

Ioffe (2017) trained with rmax = 1, dmax = 0 (plain batch norm) first and
relaxed them later; slim only took fixed numbers. This runs the small
convnet on scikit-learn's digits for `--steps` steps with `slimnorm train`'s
defaults (momentum 0.9, lr 0.1 with cosine decay, weight decay 1e-4, batch 64)
and: batch norm; batch renorm clipped at the paper's final rmax 3 / dmax 5
from step 0; batch renorm with the warm-up schedule scaled to the run (the
paper's 5k/25k/40k of a 40k-step relaxation, as fractions of `--steps`).
Reports test accuracy (moving statistics, eval mode) per seed and the mean;
writes JSON, a markdown table and a PNG of accuracy over steps.
"""

import json
import os

import numpy as np

from slimnorm.cli.common import ArgumentParser, int_at_least
from slimnorm.cli.help_format import DefaultsFormatter

CASES = ("batch_norm", "renorm_fixed", "renorm_warmup")


def _params(case, steps):
    if case == "batch_norm":
        return "batch", {}
    if case == "renorm_fixed":
        return "batch_renorm", {"renorm_schedule": {"warmup_steps": 0, "dmax_steps": 1,
                                                    "rmax_steps": 1}}
    return "batch_renorm", {"renorm_schedule": {
        "warmup_steps": steps * 5 // 40, "dmax_steps": steps * 25 // 40, "rmax_steps": steps}}


def run(case, seed, steps, data, batch_size=64, eval_every=25):
    """Trains one network; returns [(step, test accuracy)]."""
    import tensorflow as tf
    import tf_slim as slim

    from nets import small_convnet

    tf1 = tf.compat.v1
    normalizer, normalizer_params = _params(case, steps)
    curve = []
    with tf.Graph().as_default():
        tf1.set_random_seed(seed)
        images = tf1.placeholder(tf.float32, (None,) + data.image_shape)
        labels = tf1.placeholder(tf.int64, [None])
        training = tf1.placeholder(tf.bool, [])
        with tf1.variable_scope("net"), slim.arg_scope(
                small_convnet.small_convnet_arg_scope(weight_decay=1e-4)):
            logits, _ = small_convnet.small_convnet(
                images, num_classes=data.num_classes, is_training=training,
                normalizer=normalizer, normalizer_params=normalizer_params)
        tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        loss = tf1.losses.get_total_loss()
        step = tf1.train.get_or_create_global_step()
        progress = tf.minimum(tf.cast(step, tf.float32) / steps, 1.0)
        learning_rate = 0.05 * (1.0 + tf.cos(np.pi * progress))
        with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
            train_op = tf1.train.MomentumOptimizer(learning_rate, 0.9).minimize(
                loss, global_step=step)
        correct = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))
        rng = np.random.default_rng(seed)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for i in range(1, steps + 1):
                batch = rng.choice(len(data.train_labels), batch_size, replace=False)
                sess.run(train_op, {images: data.train_images[batch],
                                    labels: data.train_labels[batch], training: True})
                if i % eval_every == 0 or i == steps:
                    accuracy = sess.run(correct, {images: data.test_images,
                                                  labels: data.test_labels, training: False})
                    curve.append((i, float(accuracy)))
    return curve


def main(argv=None, prog=None):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument("--steps", type=int_at_least(1), default=300)
    parser.add_argument("--seeds", type=int_at_least(1), default=3)
    parser.add_argument("--out", default=os.path.join("runs", "exp-renorm-warmup", "renorm_warmup"),
                        help="path prefix of the .json, .md and .png written")
    args = parser.parse_args(argv)
    from slimnorm.data import datasets
    data = datasets.load("digits")
    results = {case: {} for case in CASES}
    for case in CASES:
        for seed in range(args.seeds):
            curve = run(case, seed, args.steps, data)
            results[case][seed] = curve
            print(f"{case:14s} seed {seed}: test accuracy {curve[-1][1]:.4f}", flush=True)
    finals = {case: [curves[s][-1][1] for s in curves] for case, curves in results.items()}
    lines = ["| normalizer | " + " | ".join(f"seed {s}" for s in range(args.seeds)) +
             " | mean |", "|---" * (args.seeds + 2) + "|"]
    for case in CASES:
        lines.append(f"| {case} | " + " | ".join(f"{a:.4f}" for a in finals[case]) +
                     f" | {np.mean(finals[case]):.4f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"steps": args.steps, "curves": results}, f)
    with open(args.out + ".md", "w") as f:
        f.write(f"Test accuracy on digits after {args.steps} steps (small convnet, momentum "
                "0.9, lr 0.1 cosine, weight decay 1e-4, batch 64, eval mode).\n\n" + table + "\n")
    _plot(results, args.out + ".png")


def _plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for case, color in zip(CASES, ("C0", "C1", "C2")):
        for seed, curve in results[case].items():
            steps, accuracy = zip(*curve)
            ax.plot(steps, accuracy, color=color, alpha=0.7, label=case if seed == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy (eval mode)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print("wrote", path)


if __name__ == "__main__":
    main()
