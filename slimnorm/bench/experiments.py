"""The experiment runner shared by `exp_bn_speedup` and `exp_gn_batch_size`.

Why not `slimnorm train`: the experiments train dozens of small networks in
one process each and need, inside the training loop, the test accuracy every
``eval_every`` steps (for "steps to reach X%") and percentiles of chosen
activations on a fixed probe set (the BN paper's Figure 1). A run here is
one function call that builds its own graph, trains with plain SGD (or
momentum) on numpy batches from ``datasets.BatchSchedule``, and returns a
JSON-ready dict; no checkpoints, no summaries, no subprocess per run.

Each graph has two towers sharing variables under the scope ``model``: one
built with ``is_training=True`` (trained; batch norm uses batch statistics
and queues its moving-average updates, which ``slimnorm.training.
create_train_op`` makes every step run) and one with ``is_training=False``
(evaluated; batch norm uses its moving averages, as at inference).

Runs are spread over ``workers`` processes (spawned, each with
``threads`` intra-op threads): on 2 cores two single-threaded runs finish
sooner than one two-threaded run, since the small networks here spend most
of a step in per-op overhead rather than in the arithmetic.
"""
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import tensorflow as tf

from slimnorm.cli.common import int_at_least
from slimnorm.data import datasets
from slimnorm.train import train_op as training

tf1 = tf.compat.v1
EVAL_CHUNK = 1000


def add_common_flags(parser, name):
    """The flags every experiment takes; results go to runs/exp-``name`` by default."""
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: tiny data and few steps (< 3 minutes on 2 cores)')
    parser.add_argument('--data_dir', default=None,
                        help='directory of MNIST-format IDX files (e.g. MNIST); '
                             'default: Fashion-MNIST from its Debian package')
    parser.add_argument('--out_dir', default=os.path.join('runs', 'exp-' + name),
                        help='where the JSON, the markdown table and the PNG go')
    parser.add_argument('--seeds', type=int_at_least(1), default=None,
                        help='number of seeds per configuration (default: 3, quick: 1)')
    parser.add_argument('--workers', type=int_at_least(1), default=2,
                        help='processes running configurations in parallel')
    parser.add_argument('--threads', type=int_at_least(0), default=1,
                        help='intra-op threads of each process')
    return parser


def load_data(args, train_size, test_size):
    """The data set of the flags (digits when --quick), cut to the given sizes.

    The subsets are the first ``train_size`` examples of a permutation with
    the fixed seed 0, so every run and every seed sees the same examples.
    """
    if args.quick:
        data = datasets.load('digits')
    elif args.data_dir:
        data = datasets.load('mnist_dir', args.data_dir)
    else:
        data = datasets.load('fashion_mnist')
    return subset(data, train_size, test_size)


def subset(data, train_size, test_size, seed=0):
    """``data`` with at most ``train_size``/``test_size`` examples per split."""
    rng = np.random.RandomState(seed)

    def take(images, labels, size):
        if size is None or size >= len(labels):
            return images, labels
        index = np.sort(rng.permutation(len(labels))[:size])
        return images[index], labels[index]

    train = take(data.train_images, data.train_labels, train_size)
    test = take(data.test_images, data.test_labels, test_size)
    return datasets.Dataset(data.name, train[0], train[1], test[0], test[1], data.num_classes)


def eval_steps(num_steps, num_evals):
    """About ``num_evals`` evenly spaced steps in [0, num_steps], both ends included."""
    points = np.linspace(0, num_steps, num_evals + 1)
    return sorted({int(round(p)) for p in points})


def _resized(images, image_size):
    height = images.shape[1]
    if image_size is None or image_size == height:
        return images
    method = 'area' if image_size < height else 'bilinear'
    return tf.image.resize(images, [image_size, image_size], method=method)


def train_classifier(model_fn, data, *, batch_size, learning_rate, num_steps,
                     seed, evals_at, momentum=0.0, linear_decay=False, image_size=None,
                     probe_fn=None, probe_size=1000, threads=1, cpu_devices=1):
    """Trains ``model_fn`` on ``data`` and returns its learning curve.

    Args:
      model_fn: ``(images, is_training) -> (logits, end_points)``; called
        twice under one variable scope, the second time reusing variables.
      data: a ``datasets.Dataset``.
      batch_size, learning_rate, num_steps, momentum: the SGD schedule
        (momentum 0: plain SGD).
      linear_decay: decay the learning rate linearly to 0 at ``num_steps``
        (the final accuracy then no longer depends on where the last steps
        happened to jump); False: constant.
      seed: graph-level TF seed and the seed of the batch order.
      evals_at: the steps after which the test accuracy is measured (step 0:
        before training).
      image_size: resize images to this square size in the graph (None: as is).
      probe_fn: ``end_points -> {name: [batch] tensor}`` of the eval tower;
        the 15th/50th/85th percentiles of each are recorded at every eval, on
        the first ``probe_size`` test images.
      threads: intra-op threads.
      cpu_devices: CPU devices of the session (/device:CPU:0 to n-1), for
        models that place towers on devices of their own.

    Returns:
      {'steps': [...], 'accuracy': [...], 'train_loss': [...], 'percentiles':
      {name: [[p15, p50, p85], ...]}, 'diverged_at_step': int or None,
      'seconds': float}. A run whose loss becomes inf/NaN stops there; its
      weights are then NaN and stay so under SGD, so the accuracy measured
      right after is repeated for the remaining eval steps.
    """
    start = time.time()
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        images = tf1.placeholder(tf.float32, (None,) + data.image_shape, name='images')
        labels = tf1.placeholder(tf.int64, (None,), name='labels')
        inputs = _resized(images, image_size)
        with tf1.variable_scope('model'):
            logits, _ = model_fn(inputs, is_training=True)
        with tf1.variable_scope('model', reuse=True):
            eval_logits, eval_points = model_fn(inputs, is_training=False)
        tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        total_loss = tf1.losses.get_total_loss()
        global_step = tf1.train.get_or_create_global_step()
        if linear_decay:
            learning_rate = tf1.train.polynomial_decay(learning_rate, global_step,
                                                       num_steps, 0.0, power=1.0)
        if momentum:
            optimizer = tf1.train.MomentumOptimizer(learning_rate, momentum)
        else:
            optimizer = tf1.train.GradientDescentOptimizer(learning_rate)
        train_op = training.create_train_op(total_loss, optimizer, global_step,
                                            check_numerics=False)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(eval_logits, 1), labels), tf.int64))
        probes = probe_fn(eval_points) if probe_fn else {}
        config = tf1.ConfigProto(intra_op_parallelism_threads=threads,
                                 inter_op_parallelism_threads=1,
                                 device_count={'CPU': cpu_devices})
        with tf1.Session(config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            # train_op evaluates to the total loss of the step it runs.
            step_fn = sess.make_callable(train_op, feed_list=[images, labels])
            result = _train_loop(sess, step_fn, data, batch_size, num_steps, seed,
                                 evals_at, (images, labels, correct), probes, probe_size)
    result['seconds'] = time.time() - start
    return result


def _train_loop(sess, step_fn, data, batch_size, num_steps, seed, evals_at,
                eval_tensors, probes, probe_size):
    images, labels, correct = eval_tensors
    schedule = datasets.BatchSchedule(len(data.train_labels), batch_size, seed)
    evals_at = sorted(set(evals_at))
    out = {'steps': [], 'accuracy': [], 'train_loss': [],
           'percentiles': {name: [] for name in probes}, 'diverged_at_step': None}
    losses, step = [], 0
    for target in evals_at:
        while step < min(target, num_steps) and out['diverged_at_step'] is None:
            index = schedule.indices(step)
            value = step_fn(data.train_images[index], data.train_labels[index])
            step += 1
            losses.append(value)
            if not math.isfinite(value):
                out['diverged_at_step'] = step
        if out['diverged_at_step'] is not None and out['accuracy'] and (
                out['steps'][-1] >= out['diverged_at_step']):
            measured = {'accuracy': out['accuracy'][-1],
                        'percentiles': {n: out['percentiles'][n][-1] for n in probes}}
        else:
            measured = _evaluate(sess, data, images, labels, correct, probes, probe_size)
        out['steps'].append(target)
        out['accuracy'].append(measured['accuracy'])
        out['train_loss'].append(float(np.mean(losses)) if losses else None)
        for name in probes:
            out['percentiles'][name].append(measured['percentiles'][name])
        losses = []
    return out


def _evaluate(sess, data, images, labels, correct, probes, probe_size):
    total = 0
    for begin in range(0, len(data.test_labels), EVAL_CHUNK):
        feed = {images: data.test_images[begin:begin + EVAL_CHUNK],
                labels: data.test_labels[begin:begin + EVAL_CHUNK]}
        total += sess.run(correct, feed)
    percentiles = {}
    if probes:
        values = sess.run(probes, {images: data.test_images[:probe_size]})
        for name, value in values.items():
            percentiles[name] = (np.percentile(value, [15, 50, 85]).tolist()
                                 if np.all(np.isfinite(value)) else None)
    return {'accuracy': total / len(data.test_labels), 'percentiles': percentiles}


def run_all(run_fn, configs, workers=1, log=print):
    """``[run_fn(c) for c in configs]``, on ``workers`` spawned processes.

    ``run_fn`` must be a module-level function (it is pickled by name).
    Progress goes to ``log`` as runs finish; results keep the order of
    ``configs``.
    """
    configs = list(configs)
    results = [None] * len(configs)
    start = time.time()

    def report(done, config, result):
        log('[%d/%d %4.0fs] %s -> max acc %.4f (%.0fs)' % (
            done, len(configs), time.time() - start, _describe(config),
            max(result['accuracy']), result['seconds']))

    if workers <= 1:
        for i, config in enumerate(configs):
            results[i] = run_fn(config)
            report(i + 1, config, results[i])
        return results
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_fn, config): i for i, config in enumerate(configs)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            results[i] = future.result()
            report(done, configs[i], results[i])
    return results


def _describe(config):
    return ' '.join('%s=%s' % (k, v) for k, v in config.items())


def mean_curve(results):
    """The element-wise mean accuracy of runs with the same eval steps."""
    return np.mean([r['accuracy'] for r in results], axis=0).tolist()


def steps_to_reach(steps, accuracy, target):
    """The first eval step with accuracy >= target, or None if never."""
    for step, value in zip(steps, accuracy):
        if value >= target:
            return step
    return None


def finite_or_none(value):
    """JSON-safe numbers: NaN and inf become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_outputs(out_dir, stem, record, table):
    """Writes ``<stem>.json`` (all numbers) and ``<stem>.md`` (the table)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, stem + '.json'), 'w') as f:
        json.dump(finite_or_none(record), f, indent=1, allow_nan=False)
        f.write('\n')
    with open(os.path.join(out_dir, stem + '.md'), 'w') as f:
        f.write(table + '\n')


def finish(out_dir, stem, record, table, plot_fn, started):
    """Writes the outputs, draws ``<stem>.png`` with ``plot_fn(path, record)``, prints the time."""
    write_outputs(out_dir, stem, record, table)
    png = os.path.join(out_dir, stem + '.png')
    if plot_fn(png, record):
        print('plot: %s' % png)
    print('wall time: %.0f s' % (time.time() - started))


def read_record(out_dir, stem):
    """The JSON record ``write_outputs`` wrote."""
    with open(os.path.join(out_dir, stem + '.json')) as f:
        return json.load(f)


def pyplot():
    """matplotlib.pyplot with the file-only backend, or None if not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def markdown_table(header, rows):
    """A markdown table from a header list and rows of cells."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def parse(parser, argv=None):
    """Parses flags and fills the seed count default (3, or 1 with --quick)."""
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    return args

