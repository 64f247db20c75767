"""The optimization fields of a training run: research/slim's flags, names and defaults.

:class:`Hyperparameters` is a base of `slimnorm.train.config.TrainConfig`:
every field is a flag of slim's ``train_image_classifier`` with its
default (``slimnorm.train.optimization`` builds what they say), plus
slimnorm's older schedules and warm-up by steps. TensorFlow-free.
"""
import dataclasses

from slimnorm import checks
from slimnorm.choices import LR_SCHEDULE_ALIASES, LR_SCHEDULES, OPTIMIZERS


@dataclasses.dataclass
class Hyperparameters:
    """Learning rate, optimizer, loss and moving averages, as slim's flags.

    As in slim, the hyperparameters of the optimizers not chosen are not
    read (``--momentum`` with ``--optimizer rmsprop`` changes nothing: rmsprop
    reads ``rmsprop_momentum``).
    """
    learning_rate: float = 0.01
    # slim's learning_rate_decay_type (exponential, fixed, polynomial) or
    # slimnorm's cosine/step (by max_steps); 'constant' is 'fixed'.
    lr_schedule: str = 'exponential'
    num_epochs_per_decay: float = 2.0
    learning_rate_decay_factor: float = 0.94
    end_learning_rate: float = 0.0001
    # slim: min(decayed rate, learning_rate * step / (steps per epoch * warmup_epochs)).
    warmup_epochs: float = 0.0
    # slimnorm: the rate times min(1, (step + 1) / warmup_steps).
    warmup_steps: int = 0
    optimizer: str = 'rmsprop'
    adadelta_rho: float = 0.95
    adagrad_initial_accumulator_value: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    opt_epsilon: float = 1.0
    ftrl_learning_rate_power: float = -0.5
    ftrl_initial_accumulator_value: float = 0.1
    ftrl_l1: float = 0.0
    ftrl_l2: float = 0.0
    momentum: float = 0.9
    rmsprop_momentum: float = 0.9
    rmsprop_decay: float = 0.9
    weight_decay: float = 0.00004
    label_smoothing: float = 0.0
    clip_gradient_norm: float = 0.0
    # ExponentialMovingAverage of the model variables (None: off).
    moving_average_decay: float = None
    # slim's quantized training from this step (-1: off; slimnorm.quantize).
    quantize_delay: int = -1

    def check_hyperparameters(self):
        """Raises ValueError or TypeError for a field outside what is accepted."""
        if self.lr_schedule in LR_SCHEDULE_ALIASES:
            self.lr_schedule = LR_SCHEDULE_ALIASES[self.lr_schedule]
        checks.one_of(self.lr_schedule, LR_SCHEDULES, 'learning_rate_decay_type')
        checks.one_of(self.optimizer, OPTIMIZERS, 'optimizer')
        checks.positive(self.learning_rate, 'learning_rate')
        checks.positive(self.num_epochs_per_decay, 'num_epochs_per_decay')
        checks.positive(self.learning_rate_decay_factor, 'learning_rate_decay_factor')
        for name in ('end_learning_rate', 'warmup_epochs', 'weight_decay', 'clip_gradient_norm',
                     'adagrad_initial_accumulator_value', 'ftrl_initial_accumulator_value',
                     'ftrl_l1', 'ftrl_l2', 'momentum', 'rmsprop_momentum'):
            checks.at_least(getattr(self, name), 0, name)
        checks.positive(self.opt_epsilon, 'opt_epsilon')
        for name in ('adadelta_rho', 'adam_beta1', 'adam_beta2', 'rmsprop_decay'):
            checks.optional_fraction(getattr(self, name), name)
        if not isinstance(self.ftrl_learning_rate_power, (int, float)) or isinstance(
                self.ftrl_learning_rate_power, bool) or self.ftrl_learning_rate_power > 0:
            raise ValueError(f'ftrl_learning_rate_power={self.ftrl_learning_rate_power!r}; '
                             'accepted: a number <= 0')
        checks.integer(self.warmup_steps, 'warmup_steps', minimum=0)
        if self.warmup_steps and self.warmup_epochs:
            raise ValueError(f'warmup_steps={self.warmup_steps} with warmup_epochs='
                             f'{self.warmup_epochs}; accepted: one of them')
        checks.at_least(self.label_smoothing, 0, 'label_smoothing')
        if self.label_smoothing >= 1:
            raise ValueError(f'label_smoothing={self.label_smoothing!r}; accepted: a number '
                             'in [0, 1)')
        checks.optional_fraction(self.moving_average_decay, 'moving_average_decay')
        checks.integer(self.quantize_delay, 'quantize_delay', minimum=-1)
