"""Deployment benchmark: TFLite and ONNX Runtime against TensorFlow, float and int8.

    slimnorm bench deploy latency --model_name inception_v2 --batch_sizes 1,8
    slimnorm bench deploy accuracy --checkpoint_path runs/digits

`latency`: the network of --model_name with random weights (latency does
not depend on them) and its batch-norm statistics measured on the random
calibration images, frozen, converted to TFLite float and full-integer int8
(post-training, calibrated on random images; run by ai-edge-litert with its
default XNNPACK delegate) and to ONNX float and int8 (ONNX Runtime's static
QDQ quantization), then timed in one process against the float32 TF frozen
graph: every round runs each model once, round-robin, and the speed-ups are
medians of per-round ratios (`slimnorm.bench.harness`). Model sizes are the
serialized bytes, split into weights, vectors, quantization parameters and
the rest by `slimnorm.bench.model_size`. All runtimes get --threads threads,
TensorFlow included (`per_session_thread_pools`).

`accuracy`: a trained run (a checkpoint with run_config.json) exported float
and int8 (post-training, 200 train images) to TFLite and ONNX; top-1 on
the run's whole test split for each, against TensorFlow's float graph. Goal:
post-training int8 within 2 points of float. For a quantization-aware run
(--quantize_delay in its run_config.json), its fake-quant graph and the
TFLite int8 model made from its ranges are in the table too, with the goal
of 1 point of the checkpoint's float graph.

Writes <output_dir>/deploy_<mode>_<model>.json and prints a Markdown table;
the CPU's model name and its vector flags are recorded with the numbers.
"""
import argparse
import json
import os
import sys

from slimnorm import checkpoints
from slimnorm.cli.common import ArgumentParser, float_at_least, int_at_least, quiet_tensorflow

DEFAULT_OUTPUT_DIR = os.path.join('runs', 'bench', 'deploy')
CPU_FLAGS = ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile',
             'amx_int8', 'amx_bf16')
FORMATS = ('tf_float32', 'tflite_float32', 'tflite_int8', 'onnx_float32', 'onnx_int8')
CALIBRATION_IMAGES = 16
PTQ_GOAL_POINTS = 2.0
QAT_GOAL_POINTS = 1.0


def cpu_info():
    """{'model': lscpu's model name, 'flags': the vector flags of CPU_FLAGS present}."""
    from slimnorm import precision
    model, flags = precision.cpu_info()
    return {'model': model or 'unknown', 'flags': [flag for flag in CPU_FLAGS if flag in flags],
            'cores': os.cpu_count()}


def random_frozen_graph(model_name, num_classes, image_size, num_channels,
                        calibration_images=CALIBRATION_IMAGES, seed=0):
    """(frozen GraphDef, input shape, calibration images) of the network with random weights.

    The calibration images are uniform in [-1, 1] (`seed`); the batch norms'
    moving statistics are theirs
    (precise BN, `slimnorm.export.precise_bn`), not the initial 0 and 1: with
    those, a deep network's activations shrink layer by layer (MobileNet v1's
    logits come out near 1e-12), which an int8 model rounds to zero, so its
    error against TF would say nothing. Calibrated, every layer's output has
    about unit scale, as in a trained network.
    """
    import tempfile

    import numpy as np
    import tensorflow as tf

    from slimnorm.export import freeze, precise_bn
    graph = freeze.build_inference_graph(model_name, num_classes, image_size=image_size,
                                         num_channels=num_channels)
    shape = graph.get_tensor_by_name('input:0').shape.as_list()
    calibration = np.random.RandomState(seed).uniform(
        -1, 1, [calibration_images] + shape[1:]).astype(np.float32)
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        init = tf.compat.v1.global_variables_initializer()
        saver = tf.compat.v1.train.Saver()
    with tempfile.TemporaryDirectory(prefix='slimnorm-bench-') as directory:
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(init)
            random = saver.save(sess, os.path.join(directory, 'random'))
        calibrated, _ = precise_bn.precise_bn_checkpoint(
            lambda images: freeze.build_network(images, model_name, num_classes,
                                                is_training=True),
            shape[1:], random, os.path.join(directory, 'calibrated'), [calibration])
        return freeze.restore_and_freeze(graph, calibrated), shape, calibration


def convert_all(graph_def, calibration):
    """{format: serialized model} of FORMATS (tf_float32: the frozen GraphDef)."""
    from slimnorm.export import onnx, tflite
    onnx_float = onnx.convert(graph_def)
    return {
        'tf_float32': graph_def.SerializeToString(),
        'tflite_float32': tflite.convert(graph_def),
        'tflite_int8': tflite.convert(graph_def, int8=True, representative=calibration),
        'onnx_float32': onnx_float,
        'onnx_int8': onnx.quantize_int8(onnx_float, calibration),
    }


def per_session_thread_pools():
    """Makes each TensorFlow Session run on the intra-op threads its config asks for.

    TensorFlow's Sessions share one process-wide intra-op pool, sized by the
    first Session of the process: `intra_op_parallelism_threads` of any later
    Session is ignored. Here the first Sessions are the ones that initialize
    and freeze the network, with TensorFlow's default (every core), so the
    float32 baseline would run on every core while TFLite and ONNX Runtime
    got --threads. TF_OVERRIDE_GLOBAL_THREADPOOL=1, read when TensorFlow
    creates its first CPU device, gives every Session a pool of its own.
    """
    os.environ['TF_OVERRIDE_GLOBAL_THREADPOOL'] = '1'


def tensorflow_runner(graph_def_bytes, threads):
    """(function(images) -> logits, its Session) of a frozen graph on `threads` threads."""
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(graph_def_bytes)
        tf.compat.v1.import_graph_def(graph_def, name='')
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                      inter_op_parallelism_threads=1)
    sess = tf.compat.v1.Session(graph=graph, config=config)
    return sess.make_callable('logits:0', ['input:0']), sess


def runners(models, batch_size, threads):
    """{format: function(images) -> logits} with each runtime prepared for `batch_size`."""
    from slimnorm.export import onnx, tflite
    tf_run, sess = tensorflow_runner(models['tf_float32'], threads)
    result = {'tf_float32': tf_run}
    for name in ('tflite_float32', 'tflite_int8'):
        interp = tflite.prepare(tflite.interpreter(models[name], threads), batch_size)
        result[name] = (lambda i: lambda images: tflite.invoke(i, images)['logits'])(interp)
    for name in ('onnx_float32', 'onnx_int8'):
        session = onnx.session(models[name], threads)
        result[name] = (lambda s: lambda images: onnx.invoke(s, images)['logits'])(session)
    return result, sess


def latency(args):
    import numpy as np

    from slimnorm.bench import harness, model_size
    from slimnorm.export import checked_write
    graph_def, shape, calibration = random_frozen_graph(
        args.model_name, args.num_classes, args.image_size, args.num_channels)
    rng = np.random.RandomState(1)
    models = convert_all(graph_def, calibration)
    rows = []
    for batch_size in args.batch_sizes:
        images = rng.uniform(-1, 1, [batch_size] + shape[1:]).astype(np.float32)
        runs, sess = runners(models, batch_size, args.threads)
        reference = runs['tf_float32'](images)
        errors = {name: checked_write.relative_error(run(images), reference)
                  for name, run in runs.items()}
        timed = harness.measure({name: (lambda r: lambda: r(images))(run)
                                 for name, run in runs.items()},
                                reps=args.rounds, warmup=2, min_sample_s=args.min_sample_s)
        speedups = harness.paired_ratios(timed, 'tf_float32')
        sess.close()
        for name in FORMATS:
            rows.append({'format': name, 'batch': batch_size,
                         'median_ms': timed[name]['median_ms'], 'iqr_ms': timed[name]['iqr_ms'],
                         'speedup_vs_tf_float32': 1.0 / speedups[name],
                         'speedup_of_medians': (timed['tf_float32']['median_ms']
                                                / timed[name]['median_ms']),
                         'size_bytes': len(models[name]),
                         'size_ratio_vs_tf_float32': len(models['tf_float32']) / len(models[name]),
                         'relative_error_vs_tf': errors[name]})
    sizes = {name: model_size.composition(name, models[name]) for name in FORMATS}
    return {'mode': 'latency', 'model_name': args.model_name, 'input_shape': shape,
            'threads': args.threads, 'rounds': args.rounds, 'rows': rows, 'sizes': sizes}


def latency_table(result):
    lines = ['| format | batch | median ms | IQR ms | speed-up vs TF float32 (paired; of '
             'medians) | size MB | smaller by | rel. error vs TF |',
             '|---|---|---|---|---|---|---|---|']
    for row in result['rows']:
        lines.append('| %s | %d | %.2f | %.2f | %.2fx; %.2fx | %.2f | %.2fx | %.2g |' % (
            row['format'], row['batch'], row['median_ms'], row['iqr_ms'],
            row['speedup_vs_tf_float32'], row['speedup_of_medians'], row['size_bytes'] / 1e6,
            row['size_ratio_vs_tf_float32'], row['relative_error_vs_tf']))
    from slimnorm.bench import model_size
    return '\n'.join(lines) + '\n\nWhere the bytes go:\n\n' + model_size.table(result['sizes'])


def _top1(logits, labels):
    import numpy as np
    return 100.0 * float(np.mean(np.asarray(logits).argmax(-1) == labels))


def accuracy(args):
    import numpy as np
    import tensorflow as tf

    from slimnorm.export import freeze, onnx, run_data, tflite
    from slimnorm.train import config as run_config
    config = run_data.model_config(args.checkpoint_path)
    if config is None:
        raise ValueError('checkpoint_path=%r has no run_config.json beside it; accepted: '
                         'a slimnorm train run' % args.checkpoint_path)
    data = config.load_data()
    size = config.image_size or data.image_shape[0]
    graph = freeze.build_inference_graph(
        config.model, data.num_classes, image_size=size, num_channels=data.image_shape[2],
        normalizer=config.normalizer_name, **config.model_kwargs)
    directory = checkpoints.directory(args.checkpoint_path)
    checkpoint = (tf.train.latest_checkpoint(directory) if os.path.isdir(args.checkpoint_path)
                  else args.checkpoint_path)
    graph_def = freeze.restore_and_freeze(graph, checkpoint)
    shape = [None, size, size, data.image_shape[2]]
    images = run_data.images(config, 'test', len(data.test_labels), shape)
    labels = data.test_labels
    calibration = run_data.images(config, 'train', 200, shape)
    models = convert_all(graph_def, calibration)
    tf_logits = freeze.run_graph_def(graph_def, images)[0]
    logits = {'tf_float32': tf_logits,
              'tflite_float32': tflite.run(models['tflite_float32'], images)['logits'],
              'tflite_int8': tflite.run(models['tflite_int8'], images)['logits'],
              'onnx_float32': onnx.run(models['onnx_float32'], images)['logits'],
              'onnx_int8': onnx.run(models['onnx_int8'], images)['logits']}
    saved = run_config.read_run_config(directory) or {}
    if saved.get('quantize_delay', -1) >= 0:  # a quantization-aware run: its int8 model too
        from slimnorm.quantize import freeze as quantized
        qat_def = quantized.freeze_quantized_graph(
            checkpoint, config.model, data.num_classes, image_size=size,
            num_channels=data.image_shape[2], normalizer=config.normalizer_name,
            **config.model_kwargs)
        logits['tf_fake_quant'] = freeze.run_graph_def(qat_def, images)[0]
        qat_model = tflite.convert(qat_def, int8=True, representative=calibration)
        models['tflite_qat_int8'] = qat_model
        logits['tflite_qat_int8'] = tflite.run(qat_model, images)['logits']
    float_top1 = _top1(tf_logits, labels)
    rows = []
    for name, value in logits.items():
        rows.append({'format': name, 'top1': _top1(value, labels),
                     'points_below_tf_float32': float_top1 - _top1(value, labels),
                     'agreement_with_tf_float32': 100.0 * float(np.mean(
                         np.asarray(value).argmax(-1) == tf_logits.argmax(-1))),
                     'size_bytes': len(models[name]) if name in models else None})
    goals = {'ptq_int8_tflite_within_%g_points' % PTQ_GOAL_POINTS:
             float_top1 - _top1(logits['tflite_int8'], labels) <= PTQ_GOAL_POINTS}
    if 'tflite_qat_int8' in logits:
        goals['qat_int8_tflite_within_%g_points' % QAT_GOAL_POINTS] = (
            float_top1 - _top1(logits['tflite_qat_int8'], labels) <= QAT_GOAL_POINTS)
    return {'mode': 'accuracy', 'model_name': config.model, 'dataset': config.dataset,
            'test_examples': int(len(labels)), 'checkpoint': checkpoint, 'rows': rows,
            'goals': goals}


def accuracy_table(result):
    lines = ['| format | top-1 % | points below TF float32 | agreement with TF float32 % | '
             'size KB |', '|---|---|---|---|---|']
    for row in result['rows']:
        size = '%.1f' % (row['size_bytes'] / 1e3) if row['size_bytes'] else '-'
        lines.append('| %s | %.2f | %.2f | %.2f | %s |' % (
            row['format'], row['top1'], row['points_below_tf_float32'],
            row['agreement_with_tf_float32'], size))
    lines.append('')
    lines.extend('- %s: %s' % (goal, 'met' if met else 'NOT met')
                 for goal, met in result['goals'].items())
    return '\n'.join(lines)


def _batch_sizes(text):
    try:
        sizes = [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError('%r is not a comma-separated list of positive '
                                         'integers' % (text,))
    return sizes


def parser(prog):
    from slimnorm.choices import MODELS
    result = ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    modes = result.add_subparsers(dest='mode', required=True)
    lat = modes.add_parser('latency', help='TFLite / ONNX Runtime latency and size vs TF float32',
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    lat.add_argument('--model_name', default='inception_v2', choices=MODELS)
    lat.add_argument('--num_classes', type=int_at_least(1), default=1001)
    lat.add_argument('--image_size', type=int_at_least(1), default=None,
                     help="default: the network's default size")
    lat.add_argument('--num_channels', type=int_at_least(1), default=3)
    lat.add_argument('--batch_sizes', type=_batch_sizes, default=[1, 8])
    lat.add_argument('--threads', type=int_at_least(1), default=os.cpu_count() or 1)
    lat.add_argument('--rounds', type=int_at_least(1), default=7)
    lat.add_argument('--min_sample_s', type=float_at_least(0), default=0.2,
                     help='calls per sample so that one lasts about this long')
    acc = modes.add_parser('accuracy', help='top-1 of float and int8 exports of a trained run',
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    acc.add_argument('--checkpoint_path', required=True,
                     help='a slimnorm train directory (or checkpoint prefix) with run_config.json')
    for sub in (lat, acc):
        sub.add_argument('--output_dir', default=DEFAULT_OUTPUT_DIR)
    return result


def main(argv=None, prog='slimnorm bench deploy'):
    args = parser(prog).parse_args(argv)
    per_session_thread_pools()
    from slimnorm.export import formats
    for fmt in ('tflite', 'onnx'):
        line = formats.missing_extra(fmt)
        if line:
            print('%s: error: %s' % (prog, line), file=sys.stderr)
            return 2
    quiet_tensorflow()
    try:
        result = latency(args) if args.mode == 'latency' else accuracy(args)
    except ValueError as err:
        print('%s: error: %s' % (prog, err), file=sys.stderr)
        return 2
    result['cpu'] = cpu_info()
    table = latency_table(result) if args.mode == 'latency' else accuracy_table(result)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, 'deploy_%s_%s.json' % (args.mode, result['model_name']))
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    os.replace(path + '.tmp', path)
    print('CPU: %s (%d cores; %s)' % (result['cpu']['model'], result['cpu']['cores'],
                                      ', '.join(result['cpu']['flags'])))
    print(table)
    print('Wrote %s' % path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
