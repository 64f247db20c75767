"""Command lines of slimnorm.export; flags are checked before TensorFlow loads.

    slimnorm export         (scripts/export_inference_graph.py)
    slimnorm precise-bn     (scripts/precise_bn.py)
    slimnorm caffe-import   (scripts/caffe_to_checkpoint.py)

Each `*_main(argv=None, prog=...)` returns the exit code: 0 done, 2 bad flags (one
line on stderr, as argparse), 1 a failure while running.
"""

import argparse
import json
import os
import sys

from slimnorm import checkpoints
from slimnorm.choices import MODELS, normalizer_names
from slimnorm.cli.common import (
    ArgumentParser,
    add_mixed_precision_argument,
    int_at_least,
    quiet_tensorflow,
)
from slimnorm.cli.help_format import DefaultsFormatter
from slimnorm.export import deploy_cli

DATA_FORMATS = ('NHWC', 'NCHW')

EXPORT_DESCRIPTION = """\
Export a nets_factory network for inference, as research/slim's
export_inference_graph.py: a GraphDef whose input placeholder is `input`
([batch_size, image_size, image_size, num_channels], NHWC; batch may be None)
and whose outputs are the identity nodes `logits` and `probabilities`.
Without --checkpoint_path the GraphDef holds the variables (as slim's);
with it, it is frozen (weights as constants).

Feed images preprocessed as the network was trained: small_convnet takes
floats in [0, 1] (slimnorm.data.datasets); inception_v2 takes slim's inception
preprocessing: RGB floats scaled to [-1, 1], central crop 0.875, resized to
224x224 (nets.inception_eval.preprocess_for_eval)."""


def _json_object(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError('%r is not JSON (%s)' % (text, err))
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('%r is not a JSON object' % (text,))
    return value


def add_model_flags(parser, num_channels=True,
                    image_size_help="height and width (default: the run's, else the "
                                    "network's default size)"):
    """The flags that rebuild the trained network; None: the run's value (run_config.json)."""
    add = parser.add_argument
    add('--model_name', default=None, choices=MODELS,
        help="default: the run's (run_config.json beside the checkpoint), else inception_v2")
    add('--normalizer', default=None, choices=normalizer_names(),
        help="default: the run's, else batch")
    add('--data_format', default=None, choices=DATA_FORMATS,
        help="the network's layout (the input stays NHWC; default: the run's, else NHWC)")
    add('--model_kwargs', type=_json_object, default=None,
        help='JSON object of further network arguments, e.g. '
             '\'{"depth_multiplier": 0.5}\' or \'{"fc_units": 128}\' (default: the run\'s)')
    add('--image_size', type=int_at_least(1), default=None,
        help=image_size_help)
    if num_channels:
        add('--num_channels', type=int_at_least(1), default=None,
            help="default: the run's, else 3")


def export_parser(prog='slimnorm export'):
    parser = ArgumentParser(prog=prog, description=EXPORT_DESCRIPTION,
                            formatter_class=DefaultsFormatter)
    add_model_flags(parser)
    add = parser.add_argument
    add('--export_image_size', type=int_at_least(1), default=None,
        help="export at this square size instead of the run's (a fully convolutional "
             "network served at another size); --image_size must agree with the run")
    add('--dataset_name', default=None,
        help='imagenet|flowers|cifar10|mnist|digits|fashion_mnist|mnist_dir: '
             "sets the number of classes (default: the run's, else imagenet unless "
             '--num_classes)')
    add('--num_classes', type=int_at_least(1), default=None)
    add('--labels_offset', type=int, default=None,
        help='subtracted from the number of classes (slim: 1 drops background; '
             "default: the run's, else 0)")
    add('--batch_size', type=int_at_least(1), default=None,
        help='static batch size of `input` (default: any)')
    add('--is_training', action='store_true',
        help='build batch norm and dropout in training mode')
    add('--output_file', required=True, help='the binary GraphDef to write')
    add('--checkpoint_path', default=None,
        help='checkpoint prefix or directory (its latest): freeze its values; the '
             'network comes from the run_config.json beside it')
    add('--fold_batch_norms', action='store_true',
        help='fold eval-mode batch norm into the layer before it (needs '
             '--checkpoint_path)')
    add('--quantize', action='store_true',
        help='the quantized graph (slimnorm.quantize.create_eval_graph: batch norm folded, '
             'FakeQuant ops with the ranges of a --quantize_delay checkpoint), for int8 '
             'converters')
    add('--saved_model_dir', default=None,
        help='also write a SavedModel (serving_default signature) here '
             '(needs --checkpoint_path)')
    deploy_cli.add_flags(parser)
    add_mixed_precision_argument(parser, default='none')
    return parser


def _check_export_args(parser, args):
    """The network to export (checked_export.Network); bad flags -> parser.error."""
    from slimnorm.export import checked_export
    if args.dataset_name is not None and args.num_classes is not None:
        parser.error('give --dataset_name (%s) or --num_classes (%s), not both'
                     % (args.dataset_name, args.num_classes))
    for flag in ('fold_batch_norms', 'saved_model_dir', 'mixed_precision'):
        if getattr(args, flag) not in (None, False, 'none') and not args.checkpoint_path:
            parser.error('--%s needs --checkpoint_path: only a frozen graph '
                         'can be folded, served or rewritten' % flag)
    clash = [flag for flag in ('fold_batch_norms', 'is_training', 'saved_model_dir')
             if args.quantize and getattr(args, flag)]
    if args.mixed_precision != 'none' and (args.quantize or args.output_format != 'frozen'):
        clash = ['mixed_precision']
    if clash:
        parser.error('--quantize or --output_format %s with --%s: the quantized or converted '
                     'export is one frozen float32 inference graph; accepted: --quantize and '
                     '--output_format without it' % (args.output_format, clash[0]))
    if args.fold_batch_norms and args.is_training:
        parser.error('--fold_batch_norms with --is_training: a training-mode '
                     'batch norm normalizes with batch statistics and cannot be folded')
    deploy_cli.check_args(parser, args)
    saved_model_dir = (args.output_file if args.output_format == 'saved_model'
                       else args.saved_model_dir)
    if saved_model_dir and os.path.exists(saved_model_dir) and (
            not os.path.isdir(saved_model_dir) or os.listdir(saved_model_dir)):
        parser.error('saved_model_dir=%r exists and is not an empty directory; accepted: '
                     'a new directory' % (saved_model_dir,))
    try:
        if args.checkpoint_path:
            checkpoints.check_path(args.checkpoint_path)
        return checked_export.network_to_export(args)
    except ValueError as err:
        parser.error(str(err))


def export_main(argv=None, prog='slimnorm export'):
    parser = export_parser(prog)
    args = parser.parse_args(argv)
    network = _check_export_args(parser, args)
    quiet_tensorflow()
    import tensorflow as tf

    from slimnorm.export import checked_export, fold, verify
    from slimnorm.train import saved_run
    if args.quantize:
        return _export_quantized(parser, args, network)
    try:
        graph = checked_export.build_graph(network, args.batch_size, args.is_training)
        checkpoint = args.checkpoint_path and checkpoints.resolve(args.checkpoint_path)
        if checkpoint:
            saved_run.check_variables(saved_run.graph_variables(graph), checkpoint)
    except ValueError as err:
        parser.error(str(err))
    images, source = checked_export.verification_images(network, graph, args.batch_size)
    checked = 'checked on %s against the %s graph: max relative error %%.2g' % (
        source, 'checkpoint\'s' if checkpoint else 'initialized')
    try:
        if not checkpoint:
            _, error = checked_export.write_unfrozen(graph, args.output_file, images)
            print('Wrote %s (not frozen: no --checkpoint_path; %s)'
                  % (args.output_file, checked % error))
            return 0

        def transform(graph_def):
            if args.fold_batch_norms:
                result = fold.fold_batch_norms(graph_def, checked_export.names.OUTPUT_NAMES)
                graph_def = result.graph_def
                print('Folded %d batch norm(s) into the layer before them; %d into a '
                      'multiply-add' % (len(result.folded), len(result.affine)))
            if args.mixed_precision != 'none':
                from slimnorm.export import mixed_precision
                graph_def, agreement = mixed_precision.to_mixed_precision(
                    graph_def, args.mixed_precision, graph.get_tensor_by_name(
                        checked_export.names.INPUT_NAME + ':0').shape.as_list())
                print('Rewrote for %s (grappler, ahead of time): logits within %.3g of '
                      'float32 (relative)' % (args.mixed_precision,
                                              agreement['logits_relative_error']))
            return graph_def

        if args.output_format in ('tflite', 'onnx'):
            graph_def, _ = checked_export.freeze_checkpoint(graph, transform, checkpoint,
                                                            images)
            input_shape = graph.get_tensor_by_name(
                checked_export.names.INPUT_NAME + ':0').shape.as_list()
            return deploy_cli.write(parser, args, graph_def, input_shape)
        if args.output_format == 'saved_model':
            graph_def, error = checked_export.write_frozen(
                graph, transform, checkpoint, None, images, args.output_file)
            print('Wrote SavedModel %s (%s)' % (args.output_file, checked % error))
            return 0
        graph_def, error = checked_export.write_frozen(
            graph, transform, checkpoint, args.output_file, images, args.saved_model_dir,
            tolerance=mixed_precision_tolerance(args.mixed_precision))
    except tf.errors.OpError as err:
        print('export_inference_graph: cannot restore %s into %s: %s'
              % (args.checkpoint_path, network.model_name, err.message.splitlines()[0]),
              file=sys.stderr)
        return 1
    except (verify.ExportMismatchError, ValueError) as err:
        print('export_inference_graph: %s' % err, file=sys.stderr)
        return 1
    print('Wrote %s (frozen, %d nodes; %s)' % (args.output_file, len(graph_def.node),
                                              checked % error))
    if args.saved_model_dir:
        print('Wrote SavedModel %s' % args.saved_model_dir)
    return 0


def _export_quantized(parser, args, network):
    """export --quantize: the fake-quant inference graph (frozen with --checkpoint_path).

    Frozen, it is checked by `slimnorm.quantize.freeze` against the restored
    graph, then written through `slimnorm.export.verify` (or converted by
    --output_format tflite/onnx, which check themselves).
    """
    import tensorflow as tf

    from slimnorm.export import checked_export, freeze, verify
    from slimnorm.quantize import freeze as quantized
    build_kwargs = dict(image_size=network.image_size, batch_size=args.batch_size,
                        num_channels=network.num_channels, normalizer=network.normalizer_arg,
                        data_format=network.data_format, **network.model_kwargs)
    try:
        if not args.checkpoint_path:
            graph, _ = quantized.quantized_inference_graph(network.model_name,
                                                           network.num_classes, **build_kwargs)
            images, _ = checked_export.verification_images(network, graph, args.batch_size)
            _, error = checked_export.write_unfrozen(graph, args.output_file, images)
            print('Wrote %s (quantized, not frozen: no --checkpoint_path; checked: max '
                  'relative error %.2g)' % (args.output_file, error))
            return 0
        graph_def = quantized.freeze_quantized_graph(args.checkpoint_path, network.model_name,
                                                     network.num_classes, **build_kwargs)
    except ValueError as err:
        parser.error(str(err))
    except tf.errors.OpError as err:
        print('export_inference_graph: cannot restore %s into %s: %s'
              % (args.checkpoint_path, network.model_name, err.message.splitlines()[0]),
              file=sys.stderr)
        return 1
    input_node = next(node for node in graph_def.node if node.name == freeze.INPUT_NAME)
    input_shape = [d.size if d.size > 0 else None
                   for d in input_node.attr['shape'].shape.dim]
    if args.output_format in ('tflite', 'onnx'):
        return deploy_cli.write(parser, args, graph_def, input_shape)
    images = verify.random_images(tuple(input_shape[1:]), args.batch_size or 8)
    reference = freeze.run_graph_def(graph_def, images)[0]
    try:
        verify.write_verified(args.output_file, lambda path: freeze.write_graph_def(
            graph_def, path), checked_export.run_graph_def_file, images, reference)
    except verify.ExportMismatchError as err:
        print('export_inference_graph: %s' % err, file=sys.stderr)
        return 1
    print('Wrote %s (frozen, quantized: %d FakeQuant ops, %d nodes)'
          % (args.output_file, quantized.count_fake_quant_ops(graph_def), len(graph_def.node)))
    return 0


PRECISE_BN_DESCRIPTION = """\
Precise batch norm: recompute every moving_mean / moving_variance of a
checkpoint as the equal-weight average, over --num_batches training
batches, of the batch statistics the trained weights produce (fvcore's
update_bn_stats), and write a new run (checkpoint, state file,
run_config.json) that eval reads as it is. The network and the data are the
run's (the run_config.json beside the checkpoint: any data set training
reads, TFRecords included); flags may only repeat them, --dataset_dir may
point elsewhere. A research/slim checkpoint needs --model_name and
--dataset_name."""


def precise_bn_parser(prog='slimnorm precise-bn'):
    from slimnorm.cli import common
    parser = ArgumentParser(prog=prog, description=PRECISE_BN_DESCRIPTION,
                            formatter_class=DefaultsFormatter)
    common.add_model_arguments(parser, image_size_flag='--train_image_size')
    common.add_tfrecord_arguments(parser)
    add = parser.add_argument
    add('--dataset_split_name', '--split', dest='split', default=None,
        help="the split whose batches are used (default: the run's training split)")
    add('--checkpoint_path', required=True, help='checkpoint prefix or directory')
    add('--output_path', required=True,
        help='prefix of the checkpoint to write, in a new or empty directory')
    add('--num_batches', type=int_at_least(1), default=200)
    add('--batch_size', type=int_at_least(1), default=32)
    add('--seed', type=int, default=0)
    return parser


def precise_bn_main(argv=None, prog='slimnorm precise-bn'):
    from slimnorm.cli import common
    from slimnorm.export import precise_bn_run
    parser = precise_bn_parser(prog)
    args = parser.parse_args(argv)
    try:
        checkpoints.check_path(args.checkpoint_path)
        config, split, run = precise_bn_run.run_to_recompute(
            args.checkpoint_path, common.model_fields_from_args(args), args.split)
        precise_bn_run.check_output(args.output_path)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    quiet_tensorflow()
    try:
        checkpoint = checkpoints.resolve(args.checkpoint_path)
        shape, classes, batches = precise_bn_run.training_batches(
            config, split, args.num_batches, args.batch_size, args.seed)
        facts = precise_bn_run.source_facts(config, run, checkpoint, split, args.num_batches,
                                            args.batch_size, shape, classes)
        output, changes = precise_bn_run.write_run(
            lambda images: config.build_logits(images, classes, is_training=True),
            shape, checkpoint, args.output_path, batches, facts, config.session_config())
    except (ValueError, OSError) as err:
        parser.error(str(err))
    for name, (old, new) in sorted(changes.items()):
        print('%-60s max |new - old| %.4g' % (name, float(abs(new - old).max())))
    print('Wrote %s (%d statistics from %d batches of %d of %s split %r) and its '
          'run_config.json' % (output, len(changes), args.num_batches, args.batch_size,
                               config.dataset, split))
    return 0


def mixed_precision_tolerance(mixed_precision):
    """How far a written export's logits may be from float32's (verify's relative error)."""
    if mixed_precision == 'none':
        return None
    from slimnorm.export import mixed_precision as rewrite
    return rewrite.LOGITS_TOLERANCE


CAFFE_DESCRIPTION = """\
Import Caffe BatchNorm (+ Scale) parameters into a slim checkpoint:
<scope>/BatchNorm/{moving_mean, moving_variance} from the BatchNorm layer's
blobs divided by its scale factor, {gamma, beta} from the Scale layer that
follows it. Prints each layer's eps: build slimnorm.batch_norm with
epsilon=eps to normalize as Caffe did. Caffe's use_global_stats: true is
slim's is_training=False (stored statistics), false is is_training=True."""


def caffe_parser(prog='slimnorm caffe-import'):
    parser = ArgumentParser(prog=prog, description=CAFFE_DESCRIPTION,
                            formatter_class=DefaultsFormatter)
    add = parser.add_argument
    add('--caffemodel', required=True, help='binary .caffemodel (NetParameter)')
    add('--mapping', required=True, type=_json_object,
        help='JSON object {Caffe BatchNorm layer name: slim scope}, e.g. '
             '\'{"conv1/bn": "MyNet/conv1"}\'')
    add('--output_path', required=True, help='prefix of the checkpoint to write')
    add('--base_checkpoint', default=None,
        help='copy every tensor of this checkpoint, replacing the imported ones')
    return parser


def caffe_main(argv=None, prog='slimnorm caffe-import'):
    parser = caffe_parser(prog)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.caffemodel):
        parser.error('--caffemodel %r is not a file' % (args.caffemodel,))
    bad = {k: v for k, v in args.mapping.items() if not isinstance(v, str) or not v}
    if not args.mapping or bad:
        parser.error('--mapping must map layer names to non-empty scope strings; got %r'
                     % (bad or args.mapping,))
    quiet_tensorflow()
    from slimnorm.export import caffe
    try:
        output, info = caffe.caffe_to_checkpoint(args.caffemodel, args.mapping,
                                                 args.output_path, args.base_checkpoint)
    except ValueError as err:
        print('caffe_to_checkpoint: %s' % err, file=sys.stderr)
        return 1
    for name, layer in sorted(info.items()):
        print('%s -> %s: eps %.6g (set epsilon=%.6g), decay %.6g, use_global_stats %s, '
              'Scale layer %s' % (name, args.mapping[name], layer['eps'], layer['eps'],
                                  layer['decay'], layer['use_global_stats'], layer['scale']))
    print('Wrote %s' % output)
    return 0
