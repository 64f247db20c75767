"""Train a nets_factory network with slimnorm normalization (tf.compat.v1 Session).

    slimnorm-train --dataset_name digits --train_dir runs/digits --max_number_of_steps 600
    slimnorm-train --dataset_name fashion_mnist --normalizer group \\
        --batch_size 128 --max_number_of_steps 3000 --train_dir runs/fmnist_gn
    slimnorm-train --dataset_name tfrecord --dataset_dir /data/flowers \\
        --model_name inception_v2 --checkpoint_path runs/imagenet \\
        --checkpoint_exclude_scopes InceptionV2/Logits \\
        --trainable_scopes InceptionV2/Logits --train_dir runs/flowers

The flags are research/slim's train_image_classifier's (the older spellings
--model, --dataset, --data_dir, --max_steps, --image_size, --split still
work). Re-running on the same --train_dir resumes from its latest checkpoint;
--checkpoint_path only warm-starts a train_dir without one. SIGINT/SIGTERM
save a checkpoint and exit 0; a bad TFRecord saves one and exits 1. See
slimnorm/train/loop.py.
"""
import sys

from slimnorm.choices import LR_SCHEDULES, OPTIMIZERS
from slimnorm.cli import common
from slimnorm.train.config import TrainConfig, split_scopes  # no TensorFlow: checked first

TRAIN_FLAGS = ('train_dir', 'batch_size', 'max_steps', 'learning_rate', 'lr_schedule',
               'warmup_steps', 'optimizer', 'momentum', 'weight_decay', 'clip_gradient_norm',
               'moving_average_decay', 'save_every_steps', 'save_every_secs', 'max_to_keep',
               'log_every_steps', 'seed', 'quantize_delay')
# research/slim's split and fine-tuning flags (set as they are given).
FINE_TUNING_FLAGS = ('split', 'checkpoint_path', 'ignore_missing_vars', 'freeze_batch_norm')


def build_parser(prog='slimnorm-train'):
    defaults = TrainConfig()
    parser = common.ArgumentParser(prog=prog, description=__doc__.split('\n')[0])
    common.add_model_arguments(parser, image_size_flag='--train_image_size')
    add = parser.add_argument
    add('--train_dir', default=defaults.train_dir, help='checkpoints and summaries')
    add('--batch_size', type=int, default=defaults.batch_size)
    add('--max_number_of_steps', '--max_steps', dest='max_steps', type=int,
        default=defaults.max_steps)
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
    add('--quantize_delay', type=int, default=defaults.quantize_delay,
        help='quantization-aware training (slimnorm.quantize): -1 off; N >= 0: batch norm '
        'folded into the weights, 8-bit fake quantization from global step N on')
    add_slim_arguments(parser, defaults)
    add_scale_out_arguments(parser, defaults)
    return parser


def add_slim_arguments(parser, defaults):
    """TFRecord input, split and fine-tuning: research/slim's flags."""
    common.add_tfrecord_arguments(parser)
    add = parser.add_argument
    add('--dataset_split_name', '--split', dest='split', default=defaults.split,
        help='split to train on (TFRecords: train, ...; in-memory sets: train)')
    add('--checkpoint_path', help='warm-start a train_dir that has no checkpoint yet '
        'from this checkpoint (a prefix or a directory)')
    add('--checkpoint_exclude_scopes', default='',
        help='comma-separated scopes not restored from --checkpoint_path, e.g. '
        'SmallConvNet/logits')
    add('--trainable_scopes', default='',
        help='comma-separated scopes whose variables are trained (default: all)')
    add('--ignore_missing_vars', action='store_true',
        help='variables missing from --checkpoint_path keep their initial values '
        '(default: an error listing them)')
    add('--freeze_batch_norm', action='store_true',
        help='batch norm normalizes with its moving statistics and updates neither '
        'them nor gamma/beta (is_training=False, trainable=False)')


# --- scale-out flags (research/slim's names; slimnorm.train.clones/.cluster/.distributed) ---
SCALE_OUT_FLAGS = ('num_clones', 'clone_on_cpu', 'ps_hosts', 'worker_hosts', 'job_name',
                   'task_index', 'sync_replicas', 'replicas_to_aggregate', 'cluster_timeout_secs',
                   'sync_batch_norm')


def add_scale_out_arguments(parser, defaults):
    group = parser.add_argument_group(
        'several devices and machines', 'TF_CONFIG is read when --job_name is not given')
    add = group.add_argument
    add('--num_clones', type=int, default=defaults.num_clones,
        help='model clones (towers) in this process; --batch_size is per clone')
    add('--clone_on_cpu', action='store_true', help='clones on CPU:0..N-1 instead of GPUs')
    add('--ps_hosts', default=defaults.ps_hosts, help='comma-separated host:port of ps tasks')
    add('--worker_hosts', default=defaults.worker_hosts,
        help='comma-separated host:port of workers (the first is the chief)')
    add('--job_name', default=defaults.job_name, help='ps|worker (empty: one process)')
    add('--task_index', type=int, default=defaults.task_index, help='index within the job')
    add('--sync_replicas', action='store_true',
        help='average the gradients of the workers each step (SyncReplicasOptimizer)')
    add('--replicas_to_aggregate', type=int, default=defaults.replicas_to_aggregate,
        help='gradients averaged per synchronous step (0: the number of workers)')
    add('--cluster_timeout_secs', type=float, default=defaults.cluster_timeout_secs,
        help='longest wait for another task of the cluster to answer')
    add('--sync_batch_norm', action='store_true',
        help='batch-norm statistics over the batches of all clones of all workers '
        '(synchronized batch norm; in a cluster: workers only, no --ps_hosts, gradients '
        'all-reduced)')


def run_scale_out(config, log=print):
    """Runs ``config`` as a task of its cluster (flags or TF_CONFIG); None if it has none."""
    import dataclasses

    from slimnorm.train import cluster
    plan = cluster.plan_from_config(config)
    if plan is None:
        return None
    config = dataclasses.replace(config, ps_hosts=','.join(plan.ps_hosts),
                                 worker_hosts=','.join(plan.worker_hosts),
                                 job_name=plan.job_name, task_index=plan.task_index).check()
    if config.sync_batch_norm:
        from slimnorm.train import collective  # TensorFlow from here on
        return collective.run_task(config, plan, log)
    from slimnorm.train import distributed  # TensorFlow from here on
    return distributed.run_task(config, plan)


def run(args):
    """Trains with the parsed flags; returns the exit code."""
    fields = common.model_fields_from_args(args)
    fields.update({name: getattr(args, name)
                   for name in TRAIN_FLAGS + FINE_TUNING_FLAGS + SCALE_OUT_FLAGS})
    fields.update(checkpoint_exclude_scopes=split_scopes(args.checkpoint_exclude_scopes),
                  trainable_scopes=split_scopes(args.trainable_scopes))
    config = TrainConfig(**fields).check()
    from slimnorm.train import loop  # TensorFlow from here on
    from slimnorm.train.cluster import ClusterTimeoutError
    try:
        result = run_scale_out(config) or loop.train(config)
    except (loop.TrainingDivergedError, loop.BadRecordError, ClusterTimeoutError) as err:
        print(f'{args.prog}: {err}', file=sys.stderr)
        return 1
    if 'global_step' not in result:  # a ps task
        print(f'Done: ps task {result["task_index"]}', flush=True)
        return 0
    skipped = (f', {result["skipped_records"]} corrupt records skipped'
               if config.skip_corrupt_records else '')
    print(f'Done: step {result["global_step"]}, checkpoint {result["checkpoint"]}{skipped}',
          flush=True)
    return 0


def main(argv=None, prog='slimnorm-train'):
    common.quiet_tensorflow()
    parser = build_parser(prog)
    parser.set_defaults(prog=prog)
    return common.run_cli(parser, run, argv)


if __name__ == '__main__':
    sys.exit(main())
