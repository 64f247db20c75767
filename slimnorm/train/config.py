"""What a run is, as data: the configs of training and evaluation and their checks.

`slimnorm-train` and `slimnorm-eval` both build the network from a
:class:`ModelConfig`; training writes its :class:`TrainConfig` to
``<train_dir>/run_config.json`` so that evaluation rebuilds the same network
without being told again (flags still override it), and so that resuming a
directory with a different network is refused before a restore fails.

Every check of user input is in a ``check`` method here, made with
`slimnorm.checks` against the lists of `slimnorm.choices`: a ValueError or
TypeError naming the argument, its value and what is accepted, which the
command line prints as one line with exit code 2. This module does not
import TensorFlow at import time, so bad flags are refused at once, before
TensorFlow's start-up logging.
"""
import dataclasses
import json
import os

from slimnorm import checks
from slimnorm.choices import DATASETS, LR_SCHEDULES, MODELS, OPTIMIZERS, SPLITS, normalizer_names

RUN_CONFIG_FILE = 'run_config.json'
# The fields that decide which variables a checkpoint holds: a train_dir
# cannot be resumed with other values.
GRAPH_FIELDS = ('model', 'dataset', 'normalizer', 'model_kwargs', 'image_size')


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
        """Raises ValueError or TypeError for a field outside what is accepted; returns self."""
        checks.one_of(self.model, MODELS, 'model')
        checks.one_of(self.dataset, DATASETS, 'dataset')
        checks.one_of(self.normalizer, normalizer_names(), 'normalizer')
        if self.dataset == 'mnist_dir' and not self.data_dir:
            raise ValueError(f'data_dir={self.data_dir!r} with dataset=mnist_dir; accepted: '
                             'the directory holding train-images-idx3-ubyte.gz etc.')
        if self.dataset == 'digits' and self.data_dir:
            raise ValueError(f'data_dir={self.data_dir!r} is not used by dataset=digits; '
                             'accepted: no data_dir')
        if not isinstance(self.model_kwargs, dict):
            raise TypeError(f'model_kwargs must be a dict (a JSON object on the command '
                            f'line), got {self.model_kwargs!r}.')
        reserved = sorted(self.model_kwargs.keys() & {'num_classes', 'is_training',
                                                       'normalizer', 'weight_decay'})
        if reserved:
            raise ValueError(f'model_kwargs={self.model_kwargs!r} sets {", ".join(reserved)}; '
                             'accepted: other keys, these have flags of their own')
        checks.integer(self.image_size, 'image_size', minimum=0)
        checks.integer(self.threads, 'threads', minimum=0)
        return self

    @property
    def normalizer_name(self):
        """The normalizer as nets_factory takes it ('none' -> None)."""
        return None if self.normalizer == 'none' else self.normalizer

    def network_fn(self, num_classes, is_training, weight_decay=0.0):
        """nets_factory's network function; unknown model_kwargs -> ValueError."""
        from nets import nets_factory
        return nets_factory.get_network_fn(
            self.model, num_classes, weight_decay=weight_decay, is_training=is_training,
            normalizer=self.normalizer_name, **self.model_kwargs)

    def build_logits(self, images, num_classes, is_training, weight_decay=0.0):
        """The network on ``images``; returns ``(logits, end_points)``."""
        import tensorflow as tf
        network_fn = self.network_fn(num_classes, is_training, weight_decay)
        if self.image_size:
            images = tf.image.resize(images, [self.image_size, self.image_size])
        return network_fn(images)

    def load_data(self):
        """The data set; a missing or broken one raises ValueError (bad input)."""
        from slimnorm.data import datasets
        try:
            return datasets.load(self.dataset, self.data_dir)
        except datasets.DatasetUnavailableError as err:
            raise ValueError(str(err)) from err

    def session_config(self):
        import tensorflow as tf
        return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self.threads,
                                        inter_op_parallelism_threads=self.threads)

    def graph_fields(self):
        return {name: getattr(self, name) for name in GRAPH_FIELDS}


@dataclasses.dataclass
class TrainConfig(ModelConfig):
    """Everything `slimnorm.train.loop.train` needs; the defaults train digits."""
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
    # --- scale-out (slimnorm.train.clones, .cluster, .distributed) ---
    # research/slim's --num_clones/--clone_on_cpu: towers in one process;
    # batch_size is per clone.
    num_clones: int = 1
    clone_on_cpu: bool = False
    # A cluster: comma-separated host:port lists and this process's job and
    # task ('' job_name: one process, or TF_CONFIG when that is set).
    ps_hosts: str = ''
    worker_hosts: str = ''
    job_name: str = ''
    task_index: int = 0
    sync_replicas: bool = False
    # 0: the number of workers.
    replicas_to_aggregate: int = 0
    # Longest wait for the other tasks of the cluster to answer (seconds).
    cluster_timeout_secs: float = 120.0

    def session_config(self):
        session = super().session_config()
        session.device_count.update(clone_device_count(self.num_clones, self.clone_on_cpu))
        return session

    def check(self):
        super().check()
        check_scale_out(self)
        if not self.train_dir:
            raise ValueError(f'train_dir={self.train_dir!r}; accepted: the directory '
                             'for checkpoints')
        checks.integer(self.batch_size, 'batch_size', minimum=1)
        checks.integer(self.max_steps, 'max_steps', minimum=1)
        checks.positive(self.learning_rate, 'learning_rate')
        checks.one_of(self.lr_schedule, LR_SCHEDULES, 'lr_schedule')
        checks.integer(self.warmup_steps, 'warmup_steps', minimum=0)
        checks.one_of(self.optimizer, OPTIMIZERS, 'optimizer')
        for name in ('momentum', 'weight_decay', 'clip_gradient_norm', 'save_every_secs'):
            checks.at_least(getattr(self, name), 0, name)
        checks.optional_fraction(self.moving_average_decay, 'moving_average_decay')
        checks.integer(self.save_every_steps, 'save_every_steps', minimum=0)
        checks.integer(self.max_to_keep, 'max_to_keep', minimum=1)
        checks.integer(self.log_every_steps, 'log_every_steps', minimum=1)
        checks.integer(self.seed, 'seed', minimum=0)
        return self


def clone_device_count(num_clones, clone_on_cpu):
    """``ConfigProto.device_count`` giving a session one CPU device per clone."""
    return {'CPU': num_clones} if clone_on_cpu and num_clones > 1 else {}


def check_scale_out(config):
    """Checks the clone and cluster fields of a TrainConfig (see slimnorm.train.cluster)."""
    from slimnorm.train import cluster
    checks.integer(config.num_clones, 'num_clones', minimum=1)
    checks.boolean(config.clone_on_cpu, 'clone_on_cpu')
    cluster.check_cluster_fields(config)


@dataclasses.dataclass
class EvalConfig(ModelConfig):
    """What `slimnorm.train.evaluation` evaluates; model fields must match the run.

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
        checks.integer(self.batch_size, 'batch_size', minimum=1)
        checks.one_of(self.split, SPLITS, 'split')
        checks.optional_fraction(self.moving_average_decay, 'moving_average_decay')
        if isinstance(self.checkpoint_exclude_scopes, str):
            raise TypeError('checkpoint_exclude_scopes must be a list of scopes, not one '
                            f'string, got {self.checkpoint_exclude_scopes!r}.')
        return self


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
