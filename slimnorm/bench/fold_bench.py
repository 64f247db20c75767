"""Benchmark: inference with batch norm folded vs not, in one process.

Both graphs are the same frozen network (random weights, moving statistics
set to non-trivial values: speed does not depend on them); one is passed
through `fold.fold_batch_norms`. Networks: Inception V2 (every batch norm
after a conv), and 'block', conv 3x3 - BN - ReLU - depthwise 3x3 - BN -
ReLU on 56x56x32 inputs (the block of the issue that asked for folding).
Each runs in its own Session with TensorFlow's default graph optimizations
(grappler, oneDNN), as a server would run it. The two are called in alternation, one sample each per round,
in rotating order; the reported speed-up is the median over rounds of
unfolded time / folded time within the round, so that load from other
processes, which comes and goes over seconds, hits both sides of a pair.

With --no_remapper the sessions also run with grappler's remapper off:
the remapper is what fuses Conv2D + FusedBatchNorm + ReLU into one oneDNN
op on its own, so this shows what folding saves a runtime that does not.

    slimnorm bench fold        # batch 1 and 32 (Inception at 224x224)
    slimnorm bench fold --quick # batch 1 and 2, small inputs, 3 rounds
"""

import json
import time

import numpy as np
import tensorflow as tf

from slimnorm.cli.common import ArgumentParser, int_at_least
from slimnorm.cli.help_format import DefaultsFormatter
from slimnorm.export import fold, freeze

tf1 = tf.compat.v1


def _load_random_statistics(sess, seed):
    rng = np.random.RandomState(seed)
    for variable in tf1.global_variables():
        name = variable.op.name
        if name.endswith(('moving_mean', 'beta')):
            variable.load(rng.uniform(-0.5, 0.5, variable.shape), sess)
        elif name.endswith(('moving_variance', 'gamma')):
            variable.load(rng.uniform(0.5, 2.0, variable.shape), sess)


def _block(images):
    """conv - BN - ReLU - depthwise conv - BN - ReLU, slim layers."""
    import tf_slim as slim

    import slimnorm
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        normalizer_fn=slimnorm.batch_norm,
                        normalizer_params={'is_training': False, 'scale': True}):
        net = slim.conv2d(images, 64, [3, 3], scope='conv')
        net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, scope='depthwise')
    return tf.identity(net, name=freeze.LOGITS_NAME)


def graph_defs(model, batch_size, image_size, seed=0):
    """(frozen GraphDef, folded GraphDef, number of folded batch norms)."""
    if model == 'inception_v2':
        graph = freeze.build_inference_graph('inception_v2', 1001, image_size=image_size,
                                             batch_size=batch_size)
    elif model == 'block':
        graph = tf.Graph()
        with graph.as_default():
            _block(tf1.placeholder(tf.float32, [batch_size, image_size, image_size, 32],
                                   name=freeze.INPUT_NAME))
    else:
        raise ValueError('model=%r; accepted: inception_v2, block' % (model,))
    with graph.as_default():
        tf1.set_random_seed(seed)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            _load_random_statistics(sess, seed)
            frozen = freeze.freeze_session(sess, [freeze.LOGITS_NAME])
    result = fold.fold_batch_norms(frozen, [freeze.LOGITS_NAME])
    return frozen, result.graph_def, len(result.folded)


def session_config(remapper=True):
    config = tf1.ConfigProto()
    if not remapper:
        from tensorflow.core.protobuf import rewriter_config_pb2
        config.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
    return config


def _callable(graph_def, config):
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name='')
    sess = tf1.Session(graph=graph, config=config)
    run = sess.make_callable('logits:0', feed_list=['input:0'])
    return sess, run


def paired_timings(runs, inputs, rounds, calls_per_sample=1, warmup=2):
    """{name: [seconds per call of each round]}, cases interleaved per round."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name](inputs)
    seconds = {name: [] for name in names}
    for index in range(rounds):
        order = names[index % len(names):] + names[:index % len(names)]
        for name in order:
            start = time.perf_counter()
            for _ in range(calls_per_sample):
                runs[name](inputs)
            seconds[name].append((time.perf_counter() - start) / calls_per_sample)
    return seconds


def measure_batch(model, batch_size, image_size, rounds, calls_per_sample, remapper=True):
    """Times the unfolded and folded graphs on one batch; returns a dict."""
    frozen, folded, count = graph_defs(model, batch_size, image_size)
    channels = 3 if model == 'inception_v2' else 32
    inputs = np.random.RandomState(1).uniform(
        -1, 1, (batch_size, image_size, image_size, channels)).astype(np.float32)
    sessions, runs = [], {}
    for name, graph_def in (('unfolded', frozen), ('folded', folded)):
        sess, runs[name] = _callable(graph_def, session_config(remapper))
        sessions.append(sess)
    try:
        outputs = {name: run(inputs) for name, run in runs.items()}
        seconds = paired_timings(runs, inputs, rounds, calls_per_sample)
    finally:
        for sess in sessions:
            sess.close()
    ratios = sorted(u / f for u, f in zip(seconds['unfolded'], seconds['folded']))
    scale = np.max(np.abs(outputs['unfolded']))
    return {
        'model': model, 'remapper': remapper, 'batch_size': batch_size, 'image_size': image_size, 'rounds': rounds,
        'folded_batch_norms': count,
        'nodes': {'unfolded': len(frozen.node), 'folded': len(folded.node)},
        'median_ms': {name: 1e3 * float(np.median(s)) for name, s in seconds.items()},
        'speedup': float(np.median(ratios)),
        'speedup_q1_q3': [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
        'max_rel_err': float(np.max(np.abs(outputs['folded'] - outputs['unfolded'])) / scale),
    }


def report(results):
    """A markdown table of `measure_batch` results."""
    lines = ['| network, input | grappler remapper | unfolded (ms) | folded (ms) | '
             'speed-up (median of per-round ratios, IQR) | max rel. error |',
             '|---|---|---|---|---|---|']
    for r in results:
        lines.append('| %s, %dx%dx%d | %s | %.1f | %.1f | **%.3fx** (%.3f-%.3f) | %.1e |' % (
            r['model'], r['batch_size'], r['image_size'], r['image_size'],
            'on' if r['remapper'] else 'off',
            r['median_ms']['unfolded'], r['median_ms']['folded'],
            r['speedup'], r['speedup_q1_q3'][0], r['speedup_q1_q3'][1], r['max_rel_err']))
    return '\n'.join(lines)


def main(argv=None, prog=None):
    parser = ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='batch 1 and 2, small inputs, 3 rounds (a smoke run)')
    parser.add_argument('--models', default='inception_v2,block')
    parser.add_argument('--batch_sizes', default='1,32')
    parser.add_argument('--rounds', type=int_at_least(1), default=15)
    parser.add_argument('--no_remapper', action='store_true',
                        help='also measure with grappler\'s remapper off')
    parser.add_argument('--json', default=None, help='write the results here')
    args = parser.parse_args(argv)
    batches = (1, 2) if args.quick else [int(b) for b in args.batch_sizes.split(',')]
    sizes = {'inception_v2': 96 if args.quick else 224, 'block': 28 if args.quick else 56}
    results = []
    for remapper in (True, False) if args.no_remapper else (True,):
        for model in args.models.split(','):
            for batch_size in batches:
                # batch 1 is ~20x faster than 32: more calls per sample to time it alike
                calls = 1 if args.quick or batch_size > 4 else 10
                results.append(measure_batch(model, batch_size, sizes[model],
                                             3 if args.quick else args.rounds, calls,
                                             remapper))
                print(json.dumps(results[-1]), flush=True)
    print(report(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0
