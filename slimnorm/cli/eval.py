"""Evaluate a checkpoint of scripts/train.py on the test split.

    python scripts/eval.py --checkpoint_path runs/digits            # latest in dir
    python scripts/eval.py --checkpoint_path runs/digits/model.ckpt-600
    python scripts/eval.py --checkpoint_path runs/digits --watch --timeout 120

Prints a table and then one JSON line per checkpoint. The model flags
default to the run_config.json that train.py left beside the checkpoints.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import config_lib  # noqa: E402  (no TensorFlow: flags are checked first)


def build_parser():
    parser = config_lib.ArgumentParser(prog='eval.py', description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint_path', '--checkpoint', required=True,
                        help='a training directory (its latest checkpoint) or a '
                        'checkpoint prefix such as runs/x/model.ckpt-600')
    config_lib.add_model_arguments(parser)
    add = parser.add_argument
    add('--batch_size', type=int, default=config_lib.EvalConfig.batch_size)
    add('--split', default='test', help='|'.join(config_lib.SPLITS))
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


def _report(metrics):
    import eval_lib
    print(eval_lib.format_table(metrics))
    print(json.dumps(metrics, sort_keys=True), flush=True)


def main(args):
    path = args.checkpoint_path
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    if args.watch:
        if not os.path.isdir(path):
            raise config_lib.UsageError(f'checkpoint={path!r}: --watch needs the '
                                        'training directory')
    else:
        if args.timeout is not None:
            raise config_lib.UsageError(f'timeout={args.timeout!r} is only used with --watch')
        config_lib.check_checkpoint_path(path)
    saved = config_lib.read_run_config(directory) or {}
    fields = config_lib.model_fields_from_args(
        args, {name: saved[name] for name in config_lib.GRAPH_FIELDS + ('data_dir',)
               if name in saved})
    scopes = tuple(s.strip() for s in args.checkpoint_exclude_scopes.split(',') if s.strip())
    config = config_lib.EvalConfig(
        **fields, batch_size=args.batch_size, split=args.split,
        moving_average_decay=args.moving_average_decay,
        checkpoint_exclude_scopes=scopes, batch_stats=args.batch_stats).check()
    import eval_lib  # TensorFlow from here on
    if not args.watch:
        _report(eval_lib.evaluate(config, path))
        return 0
    for metrics in eval_lib.watch(config, path, timeout=args.timeout,
                                  max_steps=saved.get('max_steps')):
        _report(metrics)
        eval_lib.write_eval_summary(metrics, path)
    return 0


if __name__ == '__main__':
    config_lib.quiet_tensorflow()
    sys.exit(config_lib.run_cli(build_parser(), main))
