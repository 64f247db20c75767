"""Train a nets_factory network with slimnorm normalization (tf.compat.v1 Session).

    slimnorm-train --dataset digits --train_dir runs/digits --max_steps 600
    slimnorm-train --dataset fashion_mnist --normalizer group \\
        --batch_size 128 --max_steps 3000 --train_dir runs/fmnist_gn

Re-running on the same --train_dir resumes from its latest checkpoint.
SIGINT/SIGTERM save a checkpoint and exit 0. See slimnorm/train/loop.py.
"""
import sys

from slimnorm.choices import LR_SCHEDULES, OPTIMIZERS
from slimnorm.cli import common
from slimnorm.train.config import TrainConfig  # no TensorFlow: flags are checked first

TRAIN_FLAGS = ('train_dir', 'batch_size', 'max_steps', 'learning_rate', 'lr_schedule',
               'warmup_steps', 'optimizer', 'momentum', 'weight_decay', 'clip_gradient_norm',
               'moving_average_decay', 'save_every_steps', 'save_every_secs', 'max_to_keep',
               'log_every_steps', 'seed')


def build_parser(prog='slimnorm-train'):
    defaults = TrainConfig()
    parser = common.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
    common.add_model_arguments(parser)
    add = parser.add_argument
    add('--train_dir', default=defaults.train_dir, help='checkpoints and summaries')
    add('--batch_size', type=int, default=defaults.batch_size)
    add('--max_steps', type=int, default=defaults.max_steps)
    add('--learning_rate', type=float, default=defaults.learning_rate)
    add('--lr_schedule', default=defaults.lr_schedule,
        help='|'.join(LR_SCHEDULES) + ' (step: x0.1 at 50%% and 75%% of max_steps)')
    add('--warmup_steps', type=int, default=defaults.warmup_steps,
        help='linear learning-rate warm-up steps')
    add('--optimizer', default=defaults.optimizer, help='|'.join(OPTIMIZERS))
    add('--momentum', type=float, default=defaults.momentum)
    add('--weight_decay', type=float, default=defaults.weight_decay,
        help='L2 weight decay of conv and fc weights')
    add('--clip_gradient_norm', type=float, default=defaults.clip_gradient_norm,
        help='clip gradients to this global norm (0: off)')
    add('--moving_average_decay', type=float, default=None,
        help='keep ExponentialMovingAverage shadows of the model variables')
    add('--save_every_steps', type=int, default=defaults.save_every_steps,
        help='checkpoint every N steps (0: off)')
    add('--save_every_secs', type=float, default=defaults.save_every_secs,
        help='checkpoint every N seconds (0: off)')
    add('--max_to_keep', type=int, default=defaults.max_to_keep)
    add('--log_every_steps', type=int, default=defaults.log_every_steps)
    add('--seed', type=int, default=defaults.seed)
    return parser


def run(args):
    """Trains with the parsed flags; returns the exit code."""
    fields = common.model_fields_from_args(args)
    fields.update({name: getattr(args, name) for name in TRAIN_FLAGS})
    config = TrainConfig(**fields).check()
    from slimnorm.train import loop  # TensorFlow from here on
    try:
        result = loop.train(config)
    except loop.TrainingDivergedError as err:
        print(f'{args.prog}: {err}', file=sys.stderr)
        return 1
    print(f'Done: step {result["global_step"]}, checkpoint {result["checkpoint"]}', flush=True)
    return 0


def main(argv=None, prog='slimnorm-train'):
    common.quiet_tensorflow()
    parser = build_parser(prog)
    parser.set_defaults(prog=prog)
    return common.run_cli(parser, run, argv)


if __name__ == '__main__':
    sys.exit(main())
