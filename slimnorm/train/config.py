"""What a run is, as data: the configs of train.py and eval.py and their checks.

`scripts/train.py` and `scripts/eval.py` both build the network from a
:class:`ModelConfig`; training writes its :class:`TrainConfig` to
``<train_dir>/run_config.json`` so that evaluation rebuilds the same network
without being told again (flags still override it), and so that resuming a
directory with a different network is refused before a restore fails.

Every check of user input is in a ``check`` method here and raises
:class:`UsageError` naming the argument, its value and what is accepted; the
command-line wrappers turn it into one line on stderr and exit code 2
(:func:`run_cli`). This module does not import TensorFlow at import time, so
the scripts refuse bad flags at once, before TensorFlow's start-up logging.
"""
import argparse
import dataclasses
import json
import os
import sys

# Run from a checkout without installing: the repository root holds `nets`
# and `slimnorm`.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# Kept equal to nets_factory.NETWORKS and slimnorm.datasets.DATASETS by
# tests/test_train_script.py; spelled out here to avoid importing TensorFlow.
MODELS = ('inception_v2', 'small_convnet')
DATASETS = ('digits', 'fashion_mnist', 'mnist_dir')
NORMALIZERS = ('batch', 'group', 'layer', 'instance', 'batch_renorm', 'none')
LR_SCHEDULES = ('constant', 'cosine', 'step')
OPTIMIZERS = ('momentum', 'adam', 'sgd')
SPLITS = ('train', 'test')
RUN_CONFIG_FILE = 'run_config.json'
# The fields that decide which variables a checkpoint holds: a train_dir
# cannot be resumed with other values.
GRAPH_FIELDS = ('model', 'dataset', 'normalizer', 'model_kwargs', 'image_size')


class UsageError(ValueError):
    """Bad user input: reported as one line, exit code 2, no traceback."""


def _check_choice(name, value, choices):
    if value not in choices:
        raise UsageError(f'{name}={value!r} is not known; accepted: {", ".join(choices)}')


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f'{name}={value!r} must be an integer >= {minimum}')


def _check_number(name, value, minimum, strict=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value > minimum if strict else value >= minimum)
    if not ok:
        raise UsageError(f'{name}={value!r} must be a number {">" if strict else ">="} {minimum}')


def _check_decay(name, value):
    if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
        raise UsageError(f'{name}={value!r} must be in (0, 1), or unset')


@dataclasses.dataclass
class ModelConfig:
    """Which network, on which data, with which normalizer."""
    model: str = 'small_convnet'
    dataset: str = 'digits'
    data_dir: str = None
    normalizer: str = 'batch'
    # Further keyword arguments of the network, e.g. {'depths': [32, 64]}.
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    # 0: the data's own size; otherwise images are resized to this square.
    image_size: int = 0
    # Intra- and inter-op threads of the session (0: TensorFlow decides).
    threads: int = 0

    def check(self):
        """Raises UsageError for a field outside what is accepted; returns self."""
        _check_choice('model', self.model, MODELS)
        _check_choice('dataset', self.dataset, DATASETS)
        _check_choice('normalizer', self.normalizer, NORMALIZERS)
        if self.dataset == 'mnist_dir' and not self.data_dir:
            raise UsageError('data_dir is required with dataset=mnist_dir: '
                             'the directory holding train-images-idx3-ubyte.gz etc.')
        if self.dataset == 'digits' and self.data_dir:
            raise UsageError(f'data_dir={self.data_dir!r} is not used by dataset=digits')
        if not isinstance(self.model_kwargs, dict):
            raise UsageError(f'model_kwargs={self.model_kwargs!r} must be a dict '
                             '(a JSON object on the command line)')
        reserved = sorted(self.model_kwargs.keys() & {'num_classes', 'is_training',
                                                       'normalizer', 'weight_decay'})
        if reserved:
            raise UsageError(f'model_kwargs may not set {", ".join(reserved)}: '
                             'they have arguments of their own')
        _check_int('image_size', self.image_size, minimum=0)
        _check_int('threads', self.threads, minimum=0)
        return self

    @property
    def normalizer_name(self):
        """The normalizer as nets_factory takes it ('none' -> None)."""
        return None if self.normalizer == 'none' else self.normalizer

    def network_fn(self, num_classes, is_training, weight_decay=0.0):
        """nets_factory's network function; unknown model_kwargs -> UsageError."""
        from nets import nets_factory
        try:
            return nets_factory.get_network_fn(
                self.model, num_classes, weight_decay=weight_decay, is_training=is_training,
                normalizer=self.normalizer_name, **self.model_kwargs)
        except ValueError as err:
            raise UsageError(str(err)) from err

    def build_logits(self, images, num_classes, is_training, weight_decay=0.0):
        """The network on ``images``; returns ``(logits, end_points)``."""
        import tensorflow as tf
        network_fn = self.network_fn(num_classes, is_training, weight_decay)
        if self.image_size:
            images = tf.image.resize(images, [self.image_size, self.image_size])
        return network_fn(images)

    def load_data(self):
        """The data set; a missing or broken one is reported as UsageError."""
        from slimnorm import datasets
        try:
            return datasets.load(self.dataset, self.data_dir)
        except (datasets.DatasetUnavailableError, datasets.DatasetFormatError) as err:
            raise UsageError(str(err)) from err

    def session_config(self):
        import tensorflow as tf
        return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self.threads,
                                        inter_op_parallelism_threads=self.threads)

    def graph_fields(self):
        return {name: getattr(self, name) for name in GRAPH_FIELDS}


@dataclasses.dataclass
class TrainConfig(ModelConfig):
    """Everything train_lib.train needs; the defaults train digits in ~15 s."""
    train_dir: str = 'runs/train'
    batch_size: int = 64
    max_steps: int = 600
    learning_rate: float = 0.1
    lr_schedule: str = 'cosine'
    warmup_steps: int = 0
    optimizer: str = 'momentum'
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_gradient_norm: float = 0.0
    moving_average_decay: float = None
    save_every_steps: int = 0
    save_every_secs: float = 600.0
    max_to_keep: int = 5
    log_every_steps: int = 100
    seed: int = 0

    def check(self):
        super().check()
        if not self.train_dir:
            raise UsageError('train_dir is empty: give the directory for checkpoints')
        _check_int('batch_size', self.batch_size, minimum=1)
        _check_int('max_steps', self.max_steps, minimum=1)
        _check_number('learning_rate', self.learning_rate, 0, strict=True)
        _check_choice('lr_schedule', self.lr_schedule, LR_SCHEDULES)
        _check_int('warmup_steps', self.warmup_steps, minimum=0)
        _check_choice('optimizer', self.optimizer, OPTIMIZERS)
        _check_number('momentum', self.momentum, 0)
        _check_number('weight_decay', self.weight_decay, 0)
        _check_number('clip_gradient_norm', self.clip_gradient_norm, 0)
        _check_decay('moving_average_decay', self.moving_average_decay)
        _check_int('save_every_steps', self.save_every_steps, minimum=0)
        _check_number('save_every_secs', self.save_every_secs, 0)
        _check_int('max_to_keep', self.max_to_keep, minimum=1)
        _check_int('log_every_steps', self.log_every_steps, minimum=1)
        _check_int('seed', self.seed, minimum=0)
        return self


@dataclasses.dataclass
class EvalConfig(ModelConfig):
    """What eval_lib evaluates and how; model fields must match the training run.

    ``batch_stats`` builds the network with ``is_training=True``: each batch
    normalized with its own statistics, the classic evaluation mistake; it is
    there to show that failure, not to be used.
    """
    batch_size: int = 1000
    split: str = 'test'
    moving_average_decay: float = None
    checkpoint_exclude_scopes: tuple = ()
    batch_stats: bool = False

    def check(self):
        super().check()
        _check_int('batch_size', self.batch_size, minimum=1)
        _check_choice('split', self.split, SPLITS)
        _check_decay('moving_average_decay', self.moving_average_decay)
        if isinstance(self.checkpoint_exclude_scopes, str):
            raise UsageError(f'checkpoint_exclude_scopes={self.checkpoint_exclude_scopes!r} '
                             'must be a list of scopes, not one string')
        return self


def check_checkpoint_path(path):
    """Refuses a path that can hold no checkpoint (without importing TF)."""
    if path and os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, 'checkpoint')):
            raise UsageError(f'checkpoint={path!r} is a directory without checkpoints '
                             '(it has no "checkpoint" state file)')
    elif not path or not os.path.isfile(path + '.index'):
        raise UsageError(f'checkpoint={path!r} is neither a directory with checkpoints nor '
                         'a checkpoint prefix (e.g. runs/x/model.ckpt-600, whose .index exists)')


def write_run_config(train_dir, config):
    """Writes ``config`` (a dataclass) to ``train_dir`` atomically."""
    path = os.path.join(train_dir, RUN_CONFIG_FILE)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(dataclasses.asdict(config), f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)


def read_run_config(directory):
    """The run config saved in ``directory`` as a dict, or None."""
    path = os.path.join(directory, RUN_CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``prog: error: message``, exit 2."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def add_model_arguments(parser):
    """The flags of :class:`ModelConfig`; None means unset."""
    add = parser.add_argument
    add('--model', help=f'network: {"|".join(MODELS)} (default small_convnet)')
    add('--dataset', help=f'data: {"|".join(DATASETS)} (default digits)')
    add('--data_dir', help='directory of MNIST-format IDX files (mnist_dir), '
        'or another Fashion-MNIST location')
    add('--normalizer', help=f'{"|".join(NORMALIZERS)} (default batch)')
    add('--model_kwargs', help='JSON object of further network arguments, '
        'e.g. \'{"depths": [32, 64, 64, 128, 128]}\'')
    add('--image_size', type=int, help='resize images to this square size '
        '(default: as stored)')
    add('--threads', type=int, help='intra- and inter-op threads (default 0: '
        'TensorFlow decides)')


def model_fields_from_args(args, defaults=None):
    """ModelConfig fields from parsed flags; unset flags take ``defaults``."""
    fields = dict(defaults or {})
    for name in ('model', 'dataset', 'data_dir', 'normalizer', 'image_size', 'threads'):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    if args.model_kwargs is not None:
        try:
            fields['model_kwargs'] = json.loads(args.model_kwargs)
        except json.JSONDecodeError as err:
            raise UsageError(f'model_kwargs={args.model_kwargs!r} is not JSON ({err})') from err
    return fields


def quiet_tensorflow():
    """Hides TensorFlow's Python deprecation chatter; for the command lines only.

    Needs no TensorFlow import (its Python logger is the standard 'tensorflow'
    one). Errors still show. The "`layer.apply` is deprecated" warning comes
    from tf-slim's layers.
    """
    import logging
    import warnings
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    warnings.filterwarnings('ignore', message='`layer.apply` is deprecated')
    logging.getLogger('tensorflow').setLevel(logging.ERROR)


def run_cli(parser, main, argv=None):
    """Parses ``argv``, returns ``main(args)``; UsageError -> one line, exit 2."""
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UsageError as err:
        parser.error(str(err))
