"""export_inference_graph's --output_format: the flags and the writers they choose.

Kept apart from `slimnorm.export.cli` (TensorFlow-free at import, as it):
`add_flags` adds the flags, `check_args` checks them before TensorFlow
loads (a missing optional package is one line naming the pip extra), and
`write` writes the chosen format from the frozen GraphDef, checked first
(`slimnorm.export.checked_write`).

int8 models: `--representative_dataset SPLIT` calibrates post-training
quantization on that split of the run's data; a frozen quantization-aware
graph (FakeQuant ops) is converted with its own ranges instead.
"""
import sys

from slimnorm.export.formats import DEFAULT_ONNX_OPSET, ONNX_OPSETS, OUTPUT_FORMATS, missing_extra

# Images of the run's data: the check's batch (its eval split) and the calibration.
CHECK_EXAMPLES = 500
REPRESENTATIVE_EXAMPLES = 200
# Without a run_config.json beside the checkpoint there is no run data: a float
# model is checked on this many uniform [0, 1) images instead (said in the output).
RANDOM_CHECK_EXAMPLES = 32


def add_flags(parser):
    add = parser.add_argument
    add('--output_format', default='frozen', choices=OUTPUT_FORMATS,
        help='frozen: binary GraphDef; saved_model: a SavedModel directory at '
             '--output_file; tflite, onnx: a model checked against TensorFlow on the '
             "run's data before it is written (need --checkpoint_path)")
    add('--onnx_opset', type=int, default=DEFAULT_ONNX_OPSET,
        help='ONNX opset of --output_format onnx (%d to %d)'
             % (ONNX_OPSETS[0], ONNX_OPSETS[-1]))
    add('--representative_dataset', default=None, metavar='SPLIT',
        help='tflite/onnx: full-integer int8 by post-training quantization calibrated '
             "on %d images of this split of the run's data (run_config.json beside the "
             'checkpoint), e.g. train' % REPRESENTATIVE_EXAMPLES)


def check_args(parser, args):
    """parser.error (one line, exit 2) for flags that cannot work together."""
    fmt = args.output_format
    if fmt in ('tflite', 'onnx', 'saved_model') and not args.checkpoint_path:
        parser.error('--output_format %s needs --checkpoint_path: only a frozen graph '
                     'converts' % fmt)
    if args.saved_model_dir and fmt != 'frozen':
        parser.error('--saved_model_dir with --output_format %s; accepted: only with '
                     'frozen (or use --output_format saved_model)' % fmt)
    if args.onnx_opset not in ONNX_OPSETS:
        parser.error('--onnx_opset %d is not supported; accepted: %d to %d'
                     % (args.onnx_opset, ONNX_OPSETS[0], ONNX_OPSETS[-1]))
    if args.representative_dataset is not None and fmt not in ('tflite', 'onnx'):
        parser.error('--representative_dataset with --output_format %s; accepted: only '
                     'with tflite or onnx (int8 models)' % fmt)
    if fmt in ('tflite', 'onnx') and args.is_training:
        parser.error('--output_format %s with --is_training: a deployed model '
                     'runs in inference mode' % fmt)
    line = missing_extra(fmt)
    if line:
        parser.error(line)


def _images(args, input_shape, parser):
    """(check images, representative images or None, where they came from)."""
    from slimnorm import checkpoints
    from slimnorm.export import run_data, verify
    config = run_data.model_config(args.checkpoint_path)
    if config is None:
        if args.representative_dataset is not None:
            parser.error('--representative_dataset %s: no run_config.json in %s to say '
                         "which data the run trained on; accepted: a checkpoint of a "
                         'slimnorm train run' % (args.representative_dataset,
                                                 checkpoints.directory(args.checkpoint_path)))
        images = verify.random_images(tuple(input_shape[1:]), RANDOM_CHECK_EXAMPLES)
        return images, None, '%d uniform random images (no run_config.json)' % len(images)
    split = run_data.eval_split(config)
    try:
        images = run_data.images(config, split, CHECK_EXAMPLES, input_shape)
    except ValueError as err:
        parser.error(str(err))
    representative = None
    if args.representative_dataset is not None:
        try:
            representative = run_data.images(config, args.representative_dataset,
                                             REPRESENTATIVE_EXAMPLES, input_shape)
        except ValueError as err:
            parser.error('--representative_dataset %s: %s' % (args.representative_dataset, err))
    return images, representative, '%d images of split %r of %s' % (
        len(images), split, config.dataset)


def write(parser, args, graph_def, input_shape):
    """Writes `graph_def` as --output_format to --output_file; returns the exit code."""
    from slimnorm.export import checked_write, formats
    fmt = args.output_format
    images, representative, source = _images(args, input_shape, parser)
    quantization_aware = formats.has_fake_quant(graph_def)
    int8 = representative is not None or quantization_aware
    if quantization_aware and representative is None:
        representative = images  # only the input's range is taken from them
    try:
        if fmt == 'tflite':
            from slimnorm.export import tflite
            summary, size = tflite.export_tflite(graph_def, args.output_file, images, int8,
                                                 representative)
        else:
            from slimnorm.export import onnx
            summary, size = onnx.export_onnx(graph_def, args.output_file, images,
                                             args.onnx_opset, representative is not None
                                             and not quantization_aware, representative)
    except (checked_write.ExportCheckError, ValueError) as err:
        print('export_inference_graph: %s %s model not written: %s'
              % (fmt, 'int8' if int8 else 'float', err), file=sys.stderr)
        return 1
    kind = ('int8 (quantization-aware ranges)' if quantization_aware else
            'int8 (post-training, %d images of split %r)' % (len(representative),
                                                             args.representative_dataset)
            if int8 else 'float')
    opset = ', opset %d' % args.onnx_opset if fmt == 'onnx' else ''
    print('Wrote %s (%s %s%s, %d bytes); checked against TensorFlow on %s: %s'
          % (args.output_file, fmt, kind, opset, size, source, summary))
    return 0
