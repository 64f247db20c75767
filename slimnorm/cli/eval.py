"""Evaluate a checkpoint of slimnorm train on a data split.

    slimnorm eval --checkpoint_path runs/digits            # latest in dir
    slimnorm eval --checkpoint_path runs/digits/model.ckpt-600
    slimnorm eval --checkpoint_path runs/digits --watch --timeout 120
    slimnorm eval --checkpoint_path runs/flowers --dataset_split_name validation

Prints a table and then one JSON line per checkpoint. The model and data
flags (research/slim's eval_image_classifier names; the older spellings
still work) default to the run_config.json that training left beside the
checkpoints; the split defaults to test (validation for TFRecords).
"""
import json
import os
import sys

from slimnorm import checkpoints
from slimnorm.choices import TFRECORD
from slimnorm.cli import common
from slimnorm.train import config as run_config  # no TensorFlow: flags are checked first
from slimnorm.train import saved_run

# Flags that must agree with the run_config.json beside the checkpoint (the
# image size is checked on its own; --dataset_dir may differ: data move).
AGREE_WITH_RUN = ('model', 'dataset', 'normalizer', 'model_kwargs', 'labels_offset',
                  'preprocessing_name')

def build_parser(prog='slimnorm eval'):
    parser = common.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint_path', '--checkpoint', default='/tmp/tfmodel/',
                        help='a training directory (its latest checkpoint) or a '
                        'checkpoint prefix such as runs/x/model.ckpt-600')
    common.add_model_arguments(parser, image_size_flag='--eval_image_size')
    common.add_tfrecord_arguments(parser)
    add = parser.add_argument
    add('--batch_size', type=int, default=run_config.EvalConfig.batch_size,
        help='examples per batch (the results do not depend on it)')
    add('--max_num_batches', type=int, default=None,
        help='evaluate at most this many batches (default None: the whole split)')
    add('--eval_dir', default=None,
        help='write the metrics as TensorBoard summaries here (default None: nowhere; '
        'with --watch: <checkpoint directory>/eval)')
    add('--master', default='', help='the TensorFlow master: only \'\' (this process)')
    common.add_bool_flag(parser, 'quantize', 'evaluate the quantized graph '
                         '(slimnorm.quantize.create_eval_graph: batch norm folded, 8-bit fake '
                         'quantization); default None: on for a run trained with '
                         '--quantize_delay >= 0 (its run_config.json), off otherwise',
                         default=None)
    common.add_bool_flag(parser, 'use_grayscale', 'convert TFRecord images to grayscale '
                         'after preprocessing (also when the run\'s run_config.json says so)')
    add('--dataset_split_name', '--split', dest='split', default=None,
        help=f'split to evaluate (default: test; validation for {TFRECORD})')
    add('--moving_average_decay', type=float, default=None,
        help='restore the ExponentialMovingAverage shadows of the model variables')
    add('--checkpoint_exclude_scopes', default='',
        help='comma-separated scopes not to restore (left at their initializers)')
    add('--batch_stats', action='store_true',
        help='diagnosis only: normalize with each batch\'s statistics '
        '(is_training=True), the classic evaluation mistake')
    add('--watch', action='store_true',
        help='evaluate each new checkpoint of the directory as it appears; stops at '
        'the training run\'s max_steps or after --timeout')
    add('--timeout', type=float, default=None,
        help='with --watch: stop after this many seconds without a new checkpoint')
    return parser


def _report(metrics, config, run):
    from slimnorm.train import evaluation
    print(evaluation.format_table(metrics))
    warning = evaluation.moving_statistics_warning(
        config, metrics['checkpoint'], metrics['global_step'],
        precise_bn=bool(run and run.precise_bn))
    if warning:
        print(warning)
    print(json.dumps(metrics, sort_keys=True), flush=True)


def _quantize(flag, saved):
    """--quantize, or (not given) whether the run was trained quantization-aware."""
    if flag is not None:
        return flag
    delay = saved.get('quantize_delay')
    return delay is not None and delay >= 0


def run(args):
    """Evaluates with the parsed flags; returns the exit code."""
    path = args.checkpoint_path
    directory = checkpoints.directory(path)
    if args.watch:
        if not os.path.isdir(path):
            raise ValueError(f'checkpoint_path={path!r} with --watch; accepted: the '
                             'training directory')
    else:
        if args.timeout is not None:
            raise ValueError(f'timeout={args.timeout!r} without --watch; accepted: no '
                             'timeout (it is only used with --watch)')
        checkpoints.check_path(path)
    saved = run_config.read_run_config(directory) or {}
    run = saved_run.find(directory)
    given = common.model_fields_from_args(args)
    if run is not None:
        saved_run.agree_all(run, given, AGREE_WITH_RUN)
        run.agree('eval_image_size', given.get('image_size'), 'image_size',
                  run.fields.get('image_size') or run.input_shape[0])
    fields = dict(run.model_config_fields() if run else {}, **given)
    scopes = run_config.split_scopes(args.checkpoint_exclude_scopes)
    tfrecords = fields.get('dataset') == TFRECORD
    split = args.split or ('validation' if tfrecords else 'test')
    config = run_config.EvalConfig(
        **fields, batch_size=args.batch_size, split=split,
        moving_average_decay=args.moving_average_decay,
        checkpoint_exclude_scopes=scopes, batch_stats=args.batch_stats,
        max_num_batches=args.max_num_batches, master=args.master, quantize=_quantize(args.quantize, saved),
        use_grayscale=args.use_grayscale or saved.get('use_grayscale', False)).check()
    from slimnorm.train import evaluation  # TensorFlow from here on
    if not args.watch:
        metrics = evaluation.evaluate(config, path)
        _report(metrics, config, run)
        if args.eval_dir:
            evaluation.write_eval_summary(metrics, args.eval_dir)
        return 0
    for metrics in evaluation.watch(config, path, timeout=args.timeout,
                                    max_steps=saved.get('max_steps')):
        _report(metrics, config, run)
        evaluation.write_eval_summary(metrics, args.eval_dir or os.path.join(path, 'eval'))
    return 0


def main(argv=None, prog='slimnorm eval'):
    common.quiet_tensorflow()
    return common.run_cli(build_parser(prog), run, argv)


if __name__ == '__main__':
    sys.exit(main())
