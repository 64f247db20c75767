"""`slimnorm bench precision`: float32 against bfloat16, side by side in one process.

    python -m slimnorm.bench.precision                       # every case, a few rounds each
    python -m slimnorm.bench.precision --models small_convnet --rounds 3

Cases: Inception V2 (224 px, 1001 classes) and the small convnet (32 px, 10
classes), batch norm and group norm, a training step (forward, loss, backward,
momentum update, the UPDATE_OPS, through ``slimnorm.training.create_train_op``)
and inference (``is_training=False``), batch 8 and 32. Each case builds one
graph and opens two Sessions on it: plain, and with
``slimnorm.precision.session_config('bfloat16')`` (TensorFlow's oneDNN
bfloat16 rewrite). The two are timed in alternation (``bench.harness``), and
the speed-up is the median over rounds of float32 time / bfloat16 time of the
same round: load on the shared machine hits both sides of a pair alike.

Then a per-op profile of one bfloat16 training step (``--profile_model``,
batch ``--profile_batch``, both normalizers): the time TensorFlow's step
stats give each op, summed by kind (casts, norms, convolutions, ...), and
how many casts the rewrite inserted with and without slimnorm's kernels on
its infer list (``slimnorm.precision.register_kernels``).

The result (``precision.json``: the machine's CPU model and BF16/AMX flags,
each case's medians and ratio, the profile) goes to a new run folder under
``--out_dir`` (default runs/bench_precision), written atomically. On a CPU
without BF16 instructions it stops with one line: there, bfloat16 is not
offered.
"""
import argparse
import collections
import json
import os
import sys
import time

from slimnorm import precision
from slimnorm.cli.common import ArgumentParser, int_at_least

MODELS = {'inception_v2': 224, 'small_convnet': 32}
NORMALIZERS = ('batch', 'group')
MODES = ('train', 'inference')
BATCHES = (8, 32)
# Op kinds of the profile: the first matching substring of the op's type.
OP_KINDS = (('cast', ('Cast',)),
            ('norm', ('FusedBatchNorm', 'SlimnormGroupNorm')),
            ('convolution', ('Conv2D', 'DepthwiseConv')),
            ('matmul', ('MatMul',)),
            ('pooling', ('Pool',)),
            ('optimizer', ('ApplyMomentum', 'AssignSub', 'AssignAdd', 'AssignVariable')),
            ('elementwise', ('Relu', 'Add', 'Mul', 'Sub', 'BiasAdd', 'Softmax', 'Concat')))


def build_case(model, normalizer, mode, batch, loss_scaling=False):
    """(graph, fetch) of one case; images and labels are constants in the graph."""
    import numpy as np
    import tensorflow as tf

    import slimnorm
    from nets import nets_factory
    tf1 = tf.compat.v1
    size = MODELS[model]
    classes = 1001 if model == 'inception_v2' else 10
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        rng = np.random.default_rng(0)
        images = tf1.get_variable('images', initializer=rng.uniform(
            -1, 1, (batch, size, size, 3)).astype(np.float32), trainable=False)
        labels = tf.constant(rng.integers(0, classes, batch), tf.int64)
        network = nets_factory.get_network_fn(model, classes, weight_decay=4e-5,
                                              is_training=mode == 'train',
                                              normalizer=normalizer)
        logits, _ = network(images)
        if mode == 'inference':
            return graph, tf.identity(logits)
        tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        loss = tf1.losses.get_total_loss()
        optimizer = tf1.train.MomentumOptimizer(0.01, 0.9)
        if loss_scaling:  # float16: both Sessions run the same loss-scaled step
            optimizer = precision.loss_scale_optimizer(optimizer, precision.FLOAT16)
        fetch = slimnorm.training.create_train_op(loss, optimizer)
    return graph, fetch


def _session(graph, mixed_precision, threads):
    import tensorflow as tf
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                      inter_op_parallelism_threads=threads)
    sess = tf.compat.v1.Session(graph=graph,
                                config=precision.session_config(mixed_precision, config))
    with graph.as_default():
        sess.run(tf.compat.v1.global_variables_initializer())
    return sess


def time_case(model, normalizer, mode, batch, rounds, warmup, threads, low='bfloat16'):
    """The row of one case: medians of float32 and ``low`` and the paired speed-up."""
    from slimnorm.bench import harness
    graph, fetch = build_case(model, normalizer, mode, batch, low == precision.FLOAT16)
    sessions = {mp: _session(graph, mp, threads) for mp in ('none', low)}
    try:
        runs = {mp: sess.make_callable(fetch) for mp, sess in sessions.items()}
        results = harness.measure(runs, reps=rounds, warmup=warmup)
    finally:
        for sess in sessions.values():
            sess.close()
    return {'model': model, 'normalizer': normalizer, 'mode': mode, 'batch': batch,
            'low_precision': low, 'float32_ms': results['none']['median_ms'],
            'low_ms': results[low]['median_ms'],
            'speedup': harness.paired_ratio(results['none']['seconds'], results[low]['seconds']),
            'rounds': results['none']['reps']}


def _kind(op_type):
    for kind, parts in OP_KINDS:
        if any(part in op_type for part in parts):
            return kind
    return 'other'


def profile_step(model, normalizer, batch, threads, kernel_list=True):
    """Summed op time by kind (ms) and the Cast count of one traced bfloat16 training step."""
    import tensorflow as tf
    tf1 = tf.compat.v1
    saved = os.environ.get(precision.INFERLIST_ENV)
    graph, fetch = build_case(model, normalizer, 'train', batch)
    try:
        if not kernel_list:
            os.environ[precision.INFERLIST_ENV] = ''  # the rewrite's own lists only
            sess = tf1.Session(graph=graph, config=_plain_bf16_config(threads))
            with graph.as_default():
                sess.run(tf1.global_variables_initializer())
        else:
            sess = _session(graph, 'bfloat16', threads)
        with sess:
            sess.run(fetch)
            sess.run(fetch)
            metadata = tf1.RunMetadata()
            sess.run(fetch, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
                     run_metadata=metadata)
    finally:
        if saved is None:
            os.environ.pop(precision.INFERLIST_ENV, None)
        else:
            os.environ[precision.INFERLIST_ENV] = saved
    by_kind, casts = collections.Counter(), 0
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            op_type = node.timeline_label.split('(')[0].split('=')[-1].strip() or node.node_name
            op_type = op_type.split(' ')[-1]
            by_kind[_kind(op_type)] += node.all_end_rel_micros / 1e3
            casts += op_type == 'Cast'
    total = sum(by_kind.values()) or 1.0
    return {'model': model, 'normalizer': normalizer, 'batch': batch,
            'kernels_on_infer_list': kernel_list, 'casts': casts,
            'op_ms': {kind: round(ms, 2) for kind, ms in by_kind.most_common()},
            'op_share': {kind: round(ms / total, 3) for kind, ms in by_kind.most_common()}}


def _plain_bf16_config(threads):
    import tensorflow as tf
    from tensorflow.core.protobuf import rewriter_config_pb2
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                      inter_op_parallelism_threads=threads)
    config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
        rewriter_config_pb2.RewriterConfig.ON
    return config


def table(rows):
    """Markdown table of the timed cases."""
    low = rows[0]['low_precision'] if rows else 'bfloat16'
    lines = [f'| model | norm | step | batch | float32 ms | {low} ms | speed-up |',
             '|---|---|---|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f'| {r["model"]} | {r["normalizer"]} | {r["mode"]} | {r["batch"]} | '
                     f'{r["float32_ms"]:.1f} | {r["low_ms"]:.1f} | {r["speedup"]:.2f}x |')
    return '\n'.join(lines)


def write_result(out_dir, record):
    """Writes ``precision.json`` and ``precision.md`` into a new run folder; returns its path."""
    folder = os.path.join(out_dir, time.strftime('%Y%m%d-%H%M%S'))
    os.makedirs(folder, exist_ok=False)
    for name, text in (('precision.json', json.dumps(record, indent=2, sort_keys=True)),
                       ('precision.md', table(record['cases']) + '\n')):
        path = os.path.join(folder, name)
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(path + '.tmp', path)
    with open(os.path.join(folder, 'precision.json'), encoding='utf-8') as f:
        json.load(f)  # what was written parses
    return folder


def build_parser(prog):
    parser = ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add('--models', nargs='+', choices=sorted(MODELS), default=list(MODELS))
    add('--normalizers', nargs='+', choices=NORMALIZERS, default=list(NORMALIZERS))
    add('--modes', nargs='+', choices=MODES, default=list(MODES))
    add('--batches', nargs='+', type=int_at_least(1), default=list(BATCHES))
    add('--rounds', type=int_at_least(1), default=5, help='timed rounds per case (each runs both)')
    add('--warmup', type=int_at_least(0), default=2, help='untimed rounds first')
    add('--threads', type=int_at_least(0), default=0, help='intra/inter-op threads (0: TensorFlow '
        'decides)')
    add('--low_precision', choices=('bfloat16', 'float16'),
        default='float16' if precision.nvidia_gpu_visible() else 'bfloat16',
        help='what float32 is compared with (float16: on the GPU, loss-scaled training)')
    add('--profile_model', choices=sorted(MODELS), default='inception_v2')
    add('--profile_batch', type=int_at_least(1), default=8)
    add('--no_profile', action='store_true')
    add('--out_dir', default=os.path.join('runs', 'bench_precision'),
        help='a new time-stamped folder is made in it')
    return parser


def main(argv=None, prog='slimnorm bench precision'):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        precision.check(args.low_precision)
    except ValueError as err:
        parser.exit(2, f'{prog}: {err} ({args.low_precision} is not offered on this '
                    'machine)\n')
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    record = {'machine': precision.machine(), 'command': ' '.join([prog] + list(argv or
                                                                           sys.argv[1:])),
              'cases': [], 'profile': []}
    for model in args.models:
        for normalizer in args.normalizers:
            for mode in args.modes:
                for batch in args.batches:
                    row = time_case(model, normalizer, mode, batch, args.rounds, args.warmup,
                                    args.threads, args.low_precision)
                    record['cases'].append(row)
                    print(f'{model:14s} {normalizer:6s} {mode:9s} batch {batch:3d}: float32 '
                          f'{row["float32_ms"]:8.1f} ms  {args.low_precision} {row["low_ms"]:8.1f} ms'
                          f'  speed-up {row["speedup"]:.2f}x', flush=True)
    if not args.no_profile and args.low_precision == 'bfloat16':
        for normalizer in args.normalizers:
            for kernel_list in ((True, False) if normalizer == 'group' else (True,)):
                entry = profile_step(args.profile_model, normalizer, args.profile_batch,
                                     args.threads, kernel_list)
                record['profile'].append(entry)
                print(f'profile {args.profile_model} {normalizer} bfloat16 train batch '
                      f'{args.profile_batch} (kernels on the infer list: {kernel_list}): '
                      f'{entry["casts"]} casts; op time share {entry["op_share"]}', flush=True)
    folder = write_result(args.out_dir, record)
    print(table(record['cases']))
    print(f'Wrote {folder}/precision.json ({record["machine"]["cpu_model"]}, flags '
          f'{record["machine"]["cpu_flags"]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
