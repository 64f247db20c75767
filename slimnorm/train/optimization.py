"""The learning rate, the optimizer and the loss of a training run, as research/slim's.

    rate = learning_rate(config, global_step, examples_per_epoch=1437)
    optimizer = make_optimizer(config, rate)
    loss = classification_loss(labels, logits, num_classes, config.label_smoothing)

What follows slim's ``train_image_classifier`` to the formula:

- ``learning_rate``: with ``steps_per_epoch = examples_per_epoch /
  batch_size`` (divided by ``replicas_to_aggregate`` with
  ``sync_replicas``), ``decay_steps = int(steps_per_epoch *
  num_epochs_per_decay)``; ``exponential`` is ``tf.train.exponential_decay``
  with ``staircase=True``, ``polynomial`` ``tf.train.polynomial_decay``
  (power 1, no cycle) towards ``end_learning_rate``, ``fixed`` the constant;
  ``warmup_epochs`` takes the minimum with ``learning_rate * step /
  (steps_per_epoch * warmup_epochs)``. ``examples_per_epoch`` is the size of
  the split trained on, as slim's ``dataset.num_samples``; ``batch_size`` is
  per clone, so with several clones an epoch counts per clone, as in slim.
  slimnorm's own schedules (``cosine``, ``step``, ``constant``) and its
  ``warmup_steps`` work by steps and need no epoch size;
- ``make_optimizer``: slim's ``_configure_optimizer``, every optimizer with
  its flags (``opt_epsilon`` is shared by adadelta, adam and rmsprop);
- ``classification_loss``: ``tf.compat.v1.losses.softmax_cross_entropy`` on
  one-hot labels with ``label_smoothing`` (the smoothed targets are
  ``onehot * (1 - s) + s / num_classes``), as slim's clone loss; without
  smoothing the sparse cross-entropy, which is the same number.
"""
import math

import tensorflow as tf

tf1 = tf.compat.v1

# 'step' schedule: the learning rate is multiplied by STEP_DECAY_FACTOR at
# each of these fractions of max_steps.
STEP_DECAY_AT = (0.5, 0.75)
STEP_DECAY_FACTOR = 0.1
# The schedules whose steps come from epochs (slim's learning_rate_decay_type).
EPOCH_SCHEDULES = ('exponential', 'polynomial')


def needs_epoch_size(config):
    """Whether ``learning_rate`` needs the size of the training split."""
    return config.lr_schedule in EPOCH_SCHEDULES or bool(config.warmup_epochs)


def steps_per_epoch(config, examples_per_epoch, replicas_to_aggregate=1):
    """slim's steps per epoch: examples / batch_size (/ replicas_to_aggregate if sync)."""
    steps = examples_per_epoch / config.batch_size
    if config.sync_replicas:
        steps /= replicas_to_aggregate
    return steps


def learning_rate(config, global_step, examples_per_epoch=None, replicas_to_aggregate=1):
    """The learning rate tensor of ``config`` at ``global_step`` (module docstring)."""
    if needs_epoch_size(config) and not examples_per_epoch:
        raise ValueError(f'learning_rate_decay_type={config.lr_schedule!r}, warmup_epochs='
                         f'{config.warmup_epochs!r} need the size of the training split, '
                         'which is not known; accepted: fixed, cosine, step or --warmup_steps')
    step = tf.cast(global_step, tf.float32)
    base = config.learning_rate
    per_epoch = (steps_per_epoch(config, examples_per_epoch, replicas_to_aggregate)
                 if examples_per_epoch else None)
    if config.lr_schedule in EPOCH_SCHEDULES:
        decay_steps = int(per_epoch * config.num_epochs_per_decay)
        if decay_steps < 1:
            raise ValueError(f'num_epochs_per_decay={config.num_epochs_per_decay!r} is '
                             f'{decay_steps} steps of {per_epoch:g} per epoch; accepted: '
                             'at least one step')
        if config.lr_schedule == 'exponential':
            rate = tf1.train.exponential_decay(
                base, global_step, decay_steps, config.learning_rate_decay_factor,
                staircase=True, name='exponential_decay_learning_rate')
        else:
            rate = tf1.train.polynomial_decay(
                base, global_step, decay_steps, config.end_learning_rate, power=1.0,
                cycle=False, name='polynomial_decay_learning_rate')
    elif config.lr_schedule == 'cosine':
        progress = tf.minimum(step / config.max_steps, 1.0)
        rate = base * 0.5 * (1.0 + tf.cos(math.pi * progress))
    elif config.lr_schedule == 'step':
        passed = tf.add_n([tf.cast(step >= int(f * config.max_steps), tf.float32)
                           for f in STEP_DECAY_AT])
        rate = base * tf.pow(STEP_DECAY_FACTOR, passed)
    else:  # fixed, constant
        rate = tf.constant(base, tf.float32)
    rate = tf.cast(rate, tf.float32)
    if config.warmup_epochs:
        rate = tf.minimum(base * step / (per_epoch * config.warmup_epochs), rate)
    if config.warmup_steps:
        rate *= tf.minimum(1.0, (step + 1.0) / config.warmup_steps)
    return tf.identity(rate, name='learning_rate_schedule')


def make_optimizer(config, rate):
    """slim's ``_configure_optimizer`` for ``config.optimizer`` at learning rate ``rate``."""
    name = config.optimizer
    if name == 'adadelta':
        return tf1.train.AdadeltaOptimizer(rate, rho=config.adadelta_rho,
                                           epsilon=config.opt_epsilon)
    if name == 'adagrad':
        return tf1.train.AdagradOptimizer(
            rate, initial_accumulator_value=config.adagrad_initial_accumulator_value)
    if name == 'adam':
        return tf1.train.AdamOptimizer(rate, beta1=config.adam_beta1, beta2=config.adam_beta2,
                                       epsilon=config.opt_epsilon)
    if name == 'ftrl':
        return tf1.train.FtrlOptimizer(
            rate, learning_rate_power=config.ftrl_learning_rate_power,
            initial_accumulator_value=config.ftrl_initial_accumulator_value,
            l1_regularization_strength=config.ftrl_l1,
            l2_regularization_strength=config.ftrl_l2)
    if name == 'momentum':
        return tf1.train.MomentumOptimizer(rate, momentum=config.momentum, name='Momentum')
    if name == 'rmsprop':
        return tf1.train.RMSPropOptimizer(rate, decay=config.rmsprop_decay,
                                          momentum=config.rmsprop_momentum,
                                          epsilon=config.opt_epsilon)
    if name == 'sgd':
        return tf1.train.GradientDescentOptimizer(rate)
    raise ValueError(f'optimizer={name!r}; accepted: see slimnorm.choices.OPTIMIZERS')


def classification_loss(labels, logits, num_classes, label_smoothing=0.0):
    """Adds the cross-entropy of ``logits`` to the tf.compat.v1 losses; returns it."""
    if not label_smoothing:
        return tf1.losses.sparse_softmax_cross_entropy(labels, logits)
    onehot = tf.one_hot(labels, num_classes, dtype=logits.dtype)
    return tf1.losses.softmax_cross_entropy(onehot, logits, label_smoothing=label_smoothing)
