"""Command lines of slimnorm.export; flags are checked before TensorFlow loads.

    slimnorm-export-inference-graph   (scripts/export_inference_graph.py)
    slimnorm-precise-bn               (scripts/precise_bn.py)
    slimnorm-caffe-to-checkpoint      (scripts/caffe_to_checkpoint.py)

Each `*_main(argv=None)` returns the exit code: 0 done, 2 bad flags (one
line on stderr, as argparse), 1 a failure while running.
"""

import argparse
import json
import os
import sys

from slimnorm import checkpoints
from slimnorm.choices import DATASETS, MODELS, normalizer_names
from slimnorm.cli.common import ArgumentParser, add_mixed_precision_argument, quiet_tensorflow

DATA_FORMATS = ('NHWC', 'NCHW')

EXPORT_DESCRIPTION = """\
Export a nets_factory network for inference, as research/slim's
export_inference_graph.py: a GraphDef whose input placeholder is `input`
([batch_size, image_size, image_size, num_channels], NHWC; batch may be None)
and whose outputs are the identity nodes `logits` and `probabilities`.
Without --checkpoint_path the GraphDef holds the variables (as slim's);
with it, it is frozen (weights as constants).

Feed images preprocessed as the network was trained: small_convnet takes
floats in [0, 1] (slimnorm.datasets); inception_v2 takes slim's inception
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


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('%r is not a positive integer' % (text,))
    return value


def add_model_flags(parser, num_channels=True,
                    image_size_help="height and width (default: the network's default size)"):
    """The flags that rebuild the trained network (shared by the commands)."""
    add = parser.add_argument
    add('--model_name', default='inception_v2', choices=MODELS)
    add('--normalizer', default='batch', choices=normalizer_names())
    add('--data_format', default='NHWC', choices=DATA_FORMATS,
        help="the network's layout (the input stays NHWC)")
    add('--model_kwargs', type=_json_object, default={},
        help='JSON object of further network arguments, e.g. '
             '\'{"depth_multiplier": 0.5}\' or \'{"fc_units": 128}\'')
    add('--image_size', type=_positive_int, default=None,
        help=image_size_help)
    if num_channels:
        add('--num_channels', type=_positive_int, default=3)


def export_parser():
    parser = ArgumentParser(prog='export_inference_graph', description=EXPORT_DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(parser)
    add = parser.add_argument
    add('--dataset_name', default=None,
        help='imagenet|flowers|cifar10|mnist|digits|fashion_mnist|mnist_dir: '
             'sets the number of classes (default imagenet unless --num_classes)')
    add('--num_classes', type=_positive_int, default=None)
    add('--labels_offset', type=int, default=0,
        help='subtracted from the number of classes (slim: 1 drops background)')
    add('--batch_size', type=_positive_int, default=None,
        help='static batch size of `input` (default: any)')
    add('--is_training', action='store_true',
        help='build batch norm and dropout in training mode')
    add('--output_file', required=True, help='the binary GraphDef to write')
    add('--checkpoint_path', default=None,
        help='checkpoint prefix or directory (its latest): freeze its values')
    add('--fold_batch_norms', action='store_true',
        help='fold eval-mode batch norm into the layer before it (needs '
             '--checkpoint_path)')
    add('--saved_model_dir', default=None,
        help='also write a SavedModel (serving_default signature) here '
             '(needs --checkpoint_path)')
    add_mixed_precision_argument(parser, default='none')
    return parser


def _check_export_args(parser, args):
    from slimnorm.export import names
    if args.dataset_name is None and args.num_classes is None:
        args.dataset_name = 'imagenet'
    elif args.dataset_name is not None and args.num_classes is not None:
        parser.error('give --dataset_name (%s) or --num_classes (%s), not both'
                     % (args.dataset_name, args.num_classes))
    for flag in ('fold_batch_norms', 'saved_model_dir', 'mixed_precision'):
        if getattr(args, flag) not in (None, False, 'none') and not args.checkpoint_path:
            parser.error('--%s needs --checkpoint_path: only a frozen graph '
                         'can be folded, served or rewritten' % flag)
    if args.checkpoint_path:
        try:
            checkpoints.check_path(args.checkpoint_path)
        except ValueError as err:
            parser.error(str(err))
    if args.fold_batch_norms and args.is_training:
        parser.error('--fold_batch_norms with --is_training: a training-mode '
                     'batch norm normalizes with batch statistics and cannot be folded')
    try:
        return names.num_classes_for(args.dataset_name, args.num_classes,
                                      args.labels_offset)
    except ValueError as err:
        parser.error(str(err))


def export_main(argv=None):
    parser = export_parser()
    args = parser.parse_args(argv)
    num_classes = _check_export_args(parser, args)
    quiet_tensorflow()
    import tensorflow as tf

    from slimnorm.export import fold, freeze, saved_model
    try:
        graph = freeze.build_inference_graph(
            args.model_name, num_classes, image_size=args.image_size,
            batch_size=args.batch_size, num_channels=args.num_channels,
            is_training=args.is_training,
            normalizer=None if args.normalizer == 'none' else args.normalizer,
            data_format=args.data_format, **args.model_kwargs)
    except ValueError as err:
        parser.error(str(err))
    if not args.checkpoint_path:
        freeze.write_graph_def(graph.as_graph_def(), args.output_file)
        print('Wrote %s (not frozen: no --checkpoint_path)' % args.output_file)
        return 0
    try:
        graph_def = freeze.restore_and_freeze(graph, args.checkpoint_path)
    except ValueError as err:
        parser.error(str(err))
    except tf.errors.OpError as err:  # e.g. a checkpoint of another network
        print('export_inference_graph: cannot restore %s into %s: %s'
              % (args.checkpoint_path, args.model_name, err.message.splitlines()[0]),
              file=sys.stderr)
        return 1
    if args.fold_batch_norms:
        result = fold.fold_batch_norms(graph_def, freeze.OUTPUT_NAMES)
        graph_def = result.graph_def
        print('Folded %d batch norm(s) into the layer before them; %d into a '
              'multiply-add' % (len(result.folded), len(result.affine)))
    if args.mixed_precision != 'none':
        from slimnorm.export import mixed_precision
        try:
            graph_def, agreement = mixed_precision.to_mixed_precision(
                graph_def, args.mixed_precision,
                graph.get_tensor_by_name(freeze.INPUT_NAME + ':0').shape.as_list())
        except ValueError as err:
            print('export_inference_graph: %s' % err, file=sys.stderr)
            return 1
        print('Rewrote for %s (grappler, ahead of time): logits within %.3g of float32 '
              '(relative)' % (args.mixed_precision, agreement['logits_relative_error']))
    freeze.write_graph_def(graph_def, args.output_file)
    print('Wrote %s (frozen, %d nodes)' % (args.output_file, len(graph_def.node)))
    if args.saved_model_dir:
        try:
            saved_model.write_saved_model(graph_def, args.saved_model_dir)
        except ValueError as err:
            print('export_inference_graph: %s' % err, file=sys.stderr)
            return 1
        print('Wrote SavedModel %s' % args.saved_model_dir)
    return 0


PRECISE_BN_DESCRIPTION = """\
Precise batch norm: recompute every moving_mean / moving_variance of a
checkpoint as the equal-weight average, over --num_batches training
batches, of the batch statistics the trained weights produce (fvcore's
update_bn_stats), and write a new checkpoint with everything else copied.
Give the network flags the checkpoint was trained with."""


def precise_bn_parser():
    parser = ArgumentParser(prog='precise_bn', description=PRECISE_BN_DESCRIPTION)
    add_model_flags(parser, num_channels=False,  # the data set's channels
                    image_size_help='resize the images to this square size, as '
                                    'train.py --image_size did (default: as stored)')
    parser.set_defaults(model_name='small_convnet')
    add = parser.add_argument
    add('--dataset', default='digits', choices=DATASETS, help='its train split is used')
    add('--data_dir', default=None)
    add('--checkpoint_path', required=True, help='checkpoint prefix or directory')
    add('--output_path', required=True, help='prefix of the checkpoint to write')
    add('--num_batches', type=_positive_int, default=200)
    add('--batch_size', type=_positive_int, default=32)
    add('--seed', type=int, default=0)
    add_mixed_precision_argument(parser, default='none')
    return parser


def precise_bn_main(argv=None):
    parser = precise_bn_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow()
    import tensorflow as tf

    from slimnorm.data import datasets
    from slimnorm.export import precise_bn
    try:
        checkpoint = checkpoints.resolve(args.checkpoint_path)
        data = datasets.load(args.dataset, args.data_dir)
    except (ValueError, OSError) as err:
        parser.error(str(err))

    def build(images):
        if args.image_size:
            images = tf.image.resize(images, [args.image_size, args.image_size])
        from nets import nets_factory
        network_fn = nets_factory.get_network_fn(
            args.model_name, data.num_classes, is_training=True,
            normalizer=None if args.normalizer == 'none' else args.normalizer,
            data_format=args.data_format, **args.model_kwargs)
        if args.data_format == 'NCHW':
            images = tf.transpose(images, [0, 3, 1, 2])
        return network_fn(images)

    image_batches = precise_bn.batches(data.train_images, args.num_batches,
                                       args.batch_size, args.seed)
    try:
        output, changes = precise_bn.precise_bn_checkpoint(
            build, data.image_shape, checkpoint, args.output_path, image_batches,
            session_config=_session_config(args.mixed_precision))
    except ValueError as err:
        print('precise_bn: %s' % err, file=sys.stderr)
        return 1
    for name, (old, new) in sorted(changes.items()):
        print('%-60s max |new - old| %.4g' % (name, float(abs(new - old).max())))
    print('Wrote %s (%d statistics from %d batches of %d)'
          % (output, len(changes), args.num_batches, args.batch_size))
    return 0


def _session_config(mixed_precision):
    from slimnorm import precision
    return precision.session_config(mixed_precision)


CAFFE_DESCRIPTION = """\
Import Caffe BatchNorm (+ Scale) parameters into a slim checkpoint:
<scope>/BatchNorm/{moving_mean, moving_variance} from the BatchNorm layer's
blobs divided by its scale factor, {gamma, beta} from the Scale layer that
follows it. Prints each layer's eps: build slimnorm.batch_norm with
epsilon=eps to normalize as Caffe did. Caffe's use_global_stats: true is
slim's is_training=False (stored statistics), false is is_training=True."""


def caffe_parser():
    parser = ArgumentParser(prog='caffe_to_checkpoint', description=CAFFE_DESCRIPTION)
    add = parser.add_argument
    add('--caffemodel', required=True, help='binary .caffemodel (NetParameter)')
    add('--mapping', required=True, type=_json_object,
        help='JSON object {Caffe BatchNorm layer name: slim scope}, e.g. '
             '\'{"conv1/bn": "MyNet/conv1"}\'')
    add('--output_path', required=True, help='prefix of the checkpoint to write')
    add('--base_checkpoint', default=None,
        help='copy every tensor of this checkpoint, replacing the imported ones')
    return parser


def caffe_main(argv=None):
    parser = caffe_parser()
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
