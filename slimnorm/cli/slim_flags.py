"""research/slim's optimization and deployment flags of train_image_classifier.

Each flag has slim's name and default (those of
`slimnorm.train.hyperparameters.Hyperparameters` and
`slimnorm.train.config.TrainConfig`); docs/slim_flags.md has the table.
TensorFlow-free.
"""
from slimnorm.choices import LR_SCHEDULE_ALIASES, LR_SCHEDULES, OPTIMIZERS
from slimnorm.cli import common

# TrainConfig fields set by the flags of this module (dest = field name).
OPTIMIZATION_FIELDS = (
    'learning_rate', 'lr_schedule', 'num_epochs_per_decay', 'learning_rate_decay_factor',
    'end_learning_rate', 'warmup_epochs', 'warmup_steps', 'optimizer', 'adadelta_rho',
    'adagrad_initial_accumulator_value', 'adam_beta1', 'adam_beta2', 'opt_epsilon',
    'ftrl_learning_rate_power', 'ftrl_initial_accumulator_value', 'ftrl_l1', 'ftrl_l2',
    'momentum', 'rmsprop_momentum', 'rmsprop_decay', 'weight_decay', 'label_smoothing',
    'clip_gradient_norm', 'moving_average_decay', 'quantize_delay')
DEPLOY_FIELDS = ('master', 'worker_replicas', 'num_ps_tasks')
# slim's float flags of the optimizers (_configure_optimizer) and of the
# learning rate (_configure_learning_rate), with their help.
OPTIMIZER_FLAG_HELP = {
    'adadelta_rho': 'decay rate of adadelta',
    'adagrad_initial_accumulator_value': 'starting value of the AdaGrad accumulators',
    'adam_beta1': 'decay rate of adam\'s 1st moment estimates',
    'adam_beta2': 'decay rate of adam\'s 2nd moment estimates',
    'opt_epsilon': 'epsilon of adadelta, adam and rmsprop',
    'ftrl_learning_rate_power': 'learning rate power of ftrl',
    'ftrl_initial_accumulator_value': 'starting value of the FTRL accumulators',
    'ftrl_l1': 'FTRL l1 regularization strength',
    'ftrl_l2': 'FTRL l2 regularization strength',
    'momentum': 'momentum of the momentum optimizer',
    'rmsprop_momentum': 'momentum of rmsprop',
    'rmsprop_decay': 'decay term of rmsprop',
}
LEARNING_RATE_FLAG_HELP = {
    'end_learning_rate': 'the final rate of the polynomial decay',
    'label_smoothing': 'label smoothing of the cross-entropy',
    'learning_rate_decay_factor': 'learning rate decay factor',
    'num_epochs_per_decay': 'epochs after which the learning rate decays (per clone, per '
                            'sync replicas aggregate, as slim)',
    'warmup_epochs': 'linear warm-up from 0 to --learning_rate over this many epochs',
}


def add_optimization_arguments(parser, defaults):
    """slim's optimization and learning-rate flags (``defaults``: a TrainConfig)."""
    group = parser.add_argument_group('optimization (research/slim\'s flags)')
    add = group.add_argument
    add('--optimizer', default=defaults.optimizer, help='|'.join(OPTIMIZERS))
    add('--weight_decay', type=float, default=defaults.weight_decay,
        help='L2 weight decay of the model weights')
    for name, text in OPTIMIZER_FLAG_HELP.items():
        add(f'--{name}', type=float, default=getattr(defaults, name), help=text)
    add('--quantize_delay', type=int, default=defaults.quantize_delay,
        help='quantization-aware training (slimnorm.quantize): -1 off; N >= 0: batch norm '
        'folded into the weights, 8-bit fake quantization from global step N on')
    add('--learning_rate', type=float, default=defaults.learning_rate,
        help='initial learning rate')
    schedules = LR_SCHEDULES + tuple(LR_SCHEDULE_ALIASES)
    add('--learning_rate_decay_type', '--lr_schedule', dest='lr_schedule',
        default=defaults.lr_schedule,
        help='|'.join(schedules) + ': exponential and polynomial decay every '
        '--num_epochs_per_decay epochs of the training split, as slim; cosine and step '
        '(x0.1 at 50%% and 75%%) over --max_number_of_steps; constant is fixed')
    for name, text in LEARNING_RATE_FLAG_HELP.items():
        add(f'--{name}', type=float, default=getattr(defaults, name), help=text)
    add('--warmup_steps', type=int, default=defaults.warmup_steps,
        help='slimnorm: linear learning-rate warm-up over this many steps')
    add('--clip_gradient_norm', type=float, default=defaults.clip_gradient_norm,
        help='slimnorm: clip gradients to this global norm (0: off)')
    add('--moving_average_decay', type=float, default=defaults.moving_average_decay,
        help='keep ExponentialMovingAverage shadows of the model variables, which '
        'eval restores with the same flag (default None: off)')


def add_deploy_arguments(group, defaults):
    """slim's model_deploy flags (checked by slimnorm.train.cluster.check_deploy_fields)."""
    add = group.add_argument
    add('--master', default=defaults.master,
        help='the TensorFlow master: \'\', or this task\'s own grpc://host:port '
        '(slimnorm starts each task\'s server from the host lists)')
    add('--worker_replicas', type=int, default=defaults.worker_replicas,
        help='number of workers: 1 or the count of --worker_hosts')
    add('--num_ps_tasks', type=int, default=defaults.num_ps_tasks,
        help='number of ps tasks: 0 or the count of --ps_hosts')


def add_train_bool_flags(parser, defaults):
    """slim's boolean training flags, in absl's spellings (--x, --x=false, --nox)."""
    common.add_bool_flag(parser, 'use_grayscale', 'convert TFRecord images to grayscale '
                         'after preprocessing', defaults.use_grayscale)
    common.add_bool_flag(parser, 'ignore_missing_vars', 'variables missing from '
                         '--checkpoint_path keep their initial values (default False: an '
                         'error listing them)', defaults.ignore_missing_vars)
