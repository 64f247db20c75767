"""Benchmark: inference with batch norm folded vs not, in one process.

Both graphs are the same frozen Inception V2 (random weights, moving
statistics set to non-trivial values: speed does not depend on them); one
is passed through `fold.fold_batch_norms`. Each runs in its own Session with
TensorFlow's default graph optimizations (grappler, oneDNN), as a server
would run it. The two are called in alternation, one sample each per round,
in rotating order; the reported speed-up is the median over rounds of
unfolded time / folded time within the round, so that load from other
processes, which comes and goes over seconds, hits both sides of a pair.

    python scripts/bench_fold.py                 # batch 1 and 32, 224x224
    python scripts/bench_fold.py --quick         # batch 1 and 2, 96x96, 3 rounds
"""

import json
import time

import numpy as np
import tensorflow as tf

from slimnorm.export import fold, freeze

tf1 = tf.compat.v1


def inception_v2_graph_defs(batch_size, image_size=224, seed=0, **network_kwargs):
    """(frozen GraphDef, folded GraphDef, number of folded batch norms)."""
    graph = freeze.build_inference_graph('inception_v2', 1001, image_size=image_size,
                                         batch_size=batch_size, **network_kwargs)
    rng = np.random.RandomState(seed)
    with graph.as_default():
        tf1.set_random_seed(seed)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for variable in tf1.global_variables():
                name = variable.op.name
                if name.endswith(('moving_mean', 'beta')):
                    variable.load(rng.uniform(-0.5, 0.5, variable.shape), sess)
                elif name.endswith(('moving_variance', 'gamma')):
                    variable.load(rng.uniform(0.5, 2.0, variable.shape), sess)
            frozen = freeze.freeze_session(sess)
    result = fold.fold_batch_norms(frozen, freeze.OUTPUT_NAMES)
    return frozen, result.graph_def, len(result.folded)


def _callable(graph_def):
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name='')
    sess = tf1.Session(graph=graph)
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


def measure_batch(batch_size, image_size, rounds, calls_per_sample, **network_kwargs):
    """Times the unfolded and folded graphs on one batch; returns a dict."""
    frozen, folded, count = inception_v2_graph_defs(batch_size, image_size,
                                                    **network_kwargs)
    inputs = np.random.RandomState(1).uniform(
        -1, 1, (batch_size, image_size, image_size, 3)).astype(np.float32)
    sessions, runs = [], {}
    for name, graph_def in (('unfolded', frozen), ('folded', folded)):
        sess, runs[name] = _callable(graph_def)
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
        'batch_size': batch_size, 'image_size': image_size, 'rounds': rounds,
        'folded_batch_norms': count,
        'nodes': {'unfolded': len(frozen.node), 'folded': len(folded.node)},
        'median_ms': {name: 1e3 * float(np.median(s)) for name, s in seconds.items()},
        'speedup': float(np.median(ratios)),
        'speedup_q1_q3': [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
        'max_rel_err': float(np.max(np.abs(outputs['folded'] - outputs['unfolded'])) / scale),
    }


def report(results):
    """A markdown table of `measure_batch` results."""
    lines = ['| Inception V2, %dx%d | unfolded (ms) | folded (ms) | speed-up (median of '
             'per-round ratios, IQR) | max rel. error |' % ((results[0]['image_size'],) * 2),
             '|---|---|---|---|---|']
    for r in results:
        lines.append('| batch %d | %.1f | %.1f | **%.3fx** (%.3f-%.3f) | %.1e |' % (
            r['batch_size'], r['median_ms']['unfolded'], r['median_ms']['folded'],
            r['speedup'], r['speedup_q1_q3'][0], r['speedup_q1_q3'][1], r['max_rel_err']))
    return '\n'.join(lines)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog='bench_fold', description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='batch 1 and 2, 96x96, 3 rounds')
    parser.add_argument('--batch_sizes', default='1,32')
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--json', default=None, help='write the results here')
    args = parser.parse_args(argv)
    if args.quick:
        plan = [(b, 96, 3, 1) for b in (1, 2)]
    else:
        batches = [int(b) for b in args.batch_sizes.split(',')]
        # batch 1 is ~20x faster than 32: more calls per sample to be timed alike
        plan = [(b, 224, args.rounds, 20 if b == 1 else 1) for b in batches]
    results = []
    for batch_size, image_size, rounds, calls in plan:
        results.append(measure_batch(batch_size, image_size, rounds, calls))
        print(json.dumps(results[-1]), flush=True)
    print(report(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0
