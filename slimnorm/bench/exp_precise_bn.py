"""Experiment: when do precise BN statistics beat the moving averages?

The small convnet is trained on scikit-learn's digits; at several points of
each run, test accuracy is measured twice with the same weights: with the
moving averages (EMA) the run kept, and with precise statistics
(`precise_bn.average_statistics` over `precise_batches` training batches of
the training batch size). Three settings:

  * decay 0.999, batch 32: the EMA remembers ~1,000 steps, longer than the
    run, so it still holds the statistics of early weights (and partly its
    initial 0/1) - the lag Wu & Johnson 2021 describe;
  * decay 0.99, batch 32: the small convnet's default, for comparison;
  * decay 0.9, batch 4: the EMA averages ~10 noisy 4-image batches.

    slimnorm exp precise-bn --out_dir runs/my-exp      # a few minutes
    slimnorm exp precise-bn --quick --out_dir /tmp/x
"""

import json
import os

import numpy as np
import tensorflow as tf

import slimnorm
from nets import nets_factory
from slimnorm.cli.common import ArgumentParser
from slimnorm.cli.help_format import DefaultsFormatter
from slimnorm.data import datasets
from slimnorm.export import precise_bn

tf1 = tf.compat.v1

SETTINGS = (  # (label, decay, batch size)
    ('decay 0.999, batch 32', 0.999, 32),
    ('decay 0.99, batch 32', 0.99, 32),
    ('decay 0.9, batch 4', 0.9, 4),
)


def _build(decay, learning_rate):
    images = tf1.placeholder(tf.float32, [None, 8, 8, 1])
    labels = tf1.placeholder(tf.int64, [None])
    network = nets_factory.get_network_fn('small_convnet', 10, is_training=True,
                                          normalizer_params={'decay': decay})
    logits, _ = network(images)
    eval_logits, _ = network(images, is_training=False, reuse=True)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
    train_op = slimnorm.training.create_train_op(
        loss, tf1.train.MomentumOptimizer(learning_rate, 0.9))
    correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(eval_logits, 1), labels), tf.float32))
    return images, labels, train_op, correct


def run_one(data, decay, batch_size, seed, eval_steps, precise_batches, learning_rate):
    """[(step, EMA accuracy, precise accuracy)] of one training run."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        images, labels, train_op, correct = _build(decay, learning_rate)
        tensors = precise_bn.statistic_tensors(graph)
        moving = {v.op.name: v for v in tf1.global_variables() if v.op.name in tensors}
        schedule = datasets.BatchSchedule(len(data.train_images), batch_size, seed)

        def accuracy(sess):
            hits = sess.run(correct, {images: data.test_images, labels: data.test_labels})
            return float(hits) / len(data.test_labels)

        rows = []
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            step = 0
            for target in eval_steps:
                while step < target:
                    idx = schedule.indices(step)
                    sess.run(train_op, {images: data.train_images[idx],
                                        labels: data.train_labels[idx]})
                    step += 1
                ema = sess.run(moving)
                ema_accuracy = accuracy(sess)
                feeds = ({images: b} for b in precise_bn.batches(
                    data.train_images, precise_batches, batch_size, seed + 1000 + step))
                for name, value in precise_bn.average_statistics(sess, tensors, feeds).items():
                    moving[name].load(value, sess)
                rows.append((step, ema_accuracy, accuracy(sess)))
                for name, value in ema.items():
                    moving[name].load(value, sess)
    return rows


def run(eval_steps=(50, 100, 200, 400, 800), seeds=(0, 1, 2), precise_batches=200,
        learning_rate=0.05, log=print):
    """{setting label: {'steps', 'ema', 'precise' (mean over seeds), 'per_seed'}}."""
    data = datasets.load('digits')
    results = {}
    for label, decay, batch_size in SETTINGS:
        per_seed = [run_one(data, decay, batch_size, seed, eval_steps, precise_batches,
                            learning_rate) for seed in seeds]
        results[label] = {
            'decay': decay, 'batch_size': batch_size, 'steps': list(eval_steps),
            'ema': np.mean([[r[1] for r in rows] for rows in per_seed], 0).tolist(),
            'precise': np.mean([[r[2] for r in rows] for rows in per_seed], 0).tolist(),
            'per_seed': per_seed}
        log('%s: EMA %s | precise %s' % (label, _fmt(results[label]['ema']),
                                          _fmt(results[label]['precise'])))
    return results


def _fmt(values):
    return ' '.join('%.3f' % v for v in values)


def table(results):
    """Markdown: test accuracy (EMA -> precise) per setting and step."""
    steps = next(iter(results.values()))['steps']
    lines = ['| test accuracy: EMA -> precise BN | ' + ' | '.join(
        'step %d' % s for s in steps) + ' |', '|---|' + '---|' * len(steps)]
    for label, r in results.items():
        cells = ['%.3f -> **%.3f**' % (e, p) for e, p in zip(r['ema'], r['precise'])]
        lines.append('| %s | %s |' % (label, ' | '.join(cells)))
    return '\n'.join(lines)


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), sharey=True)
    for ax, (label, r) in zip(np.atleast_1d(axes), results.items()):
        ax.plot(r['steps'], r['ema'], 'o-', label='moving averages (EMA)')
        ax.plot(r['steps'], r['precise'], 's-', label='precise BN (200 batches)')
        ax.set_xscale('log')
        ax.set_xticks(r['steps'])
        ax.set_xticklabels([str(step) for step in r['steps']])
        ax.minorticks_off()
        ax.set_title('small convnet, digits: ' + label, fontsize=9)
        ax.set_xlabel('training steps')
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel('test accuracy (mean of 3 seeds)')
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None, prog=None):
    parser = ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument('--out_dir', default=os.path.join('runs', 'exp-precise-bn'),
                        help='where exp_precise_bn.json and .png go')
    parser.add_argument('--quick', action='store_true',
                        help='one seed, steps 20 and 40, 10 precise batches (a smoke run)')
    args = parser.parse_args(argv)
    if args.quick:
        results = run(eval_steps=(20, 40), seeds=(0,), precise_batches=10)
    else:
        results = run()
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, 'exp_precise_bn.json'), 'w') as f:
        json.dump(results, f, indent=1)
    plot(results, os.path.join(args.out_dir, 'exp_precise_bn.png'))
    print(table(results))
    return 0
