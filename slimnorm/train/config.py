"""What a run is, as data: the configs of training and evaluation and their checks.

`slimnorm train` and `slimnorm eval` both build the network from a
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
from slimnorm.choices import (
    DEFAULT_PREPROCESSING,
    INPUT_DATASETS,
    MODELS,
    PREPROCESSINGS,
    SPLITS,
    TFRECORD,
    normalizer_names,
)
from slimnorm.train.hyperparameters import Hyperparameters

RUN_CONFIG_FILE = 'run_config.json'
# The fields that decide which variables a checkpoint holds: a train_dir
# cannot be resumed with other values.
GRAPH_FIELDS = ('model', 'dataset', 'normalizer', 'model_kwargs', 'image_size')
# How the images are read and preprocessed: evaluation takes them from the
# run's config too, unless flags say otherwise.
INPUT_FIELDS = ('data_dir', 'labels_offset', 'preprocessing_name')
NORMALIZERS_WITH_MOVING_STATISTICS = ('batch', 'batch_renorm')


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
    # dataset='tfrecord' (slim-format TFRecords in data_dir) only: how they
    # are read (`slimnorm.data.tfrecord.read_batches`); None: the model's
    # default preprocessing, as research/slim's preprocessing_factory.
    preprocessing_name: str = None
    labels_offset: int = 0
    num_readers: int = 4
    num_preprocessing_threads: int = 4
    skip_corrupt_records: bool = False
    # slim's use_grayscale: TFRecord images are converted to one channel
    # after preprocessing (the in-memory sets are grayscale already).
    use_grayscale: bool = False
    # 'none', 'bfloat16' or 'float16' (slimnorm.precision): TensorFlow's
    # mixed-precision rewrite in the Session; variables and checkpoints stay
    # float32, so it is not a graph field (a run resumes, evaluates and
    # exports in another precision).
    mixed_precision: str = 'none'

    def check(self):
        """Raises ValueError or TypeError for a field outside what is accepted; returns self."""
        checks.one_of(self.model, MODELS, 'model')
        checks.one_of(self.dataset, INPUT_DATASETS, 'dataset')
        checks.one_of(self.normalizer, normalizer_names(), 'normalizer')
        if self.dataset in ('mnist_dir', TFRECORD) and not self.data_dir:
            what = ('the directory of slim-format TFRecords and labels.txt'
                    if self.dataset == TFRECORD else
                    'the directory holding train-images-idx3-ubyte.gz etc.')
            raise ValueError(f'data_dir={self.data_dir!r} with dataset={self.dataset}; '
                             f'accepted: --dataset_dir, {what}')
        self._check_input_fields()
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
        from slimnorm import precision
        precision.check(self.mixed_precision)
        return self

    def _check_input_fields(self):
        if self.preprocessing_name is not None:
            checks.one_of(self.preprocessing_name, PREPROCESSINGS, 'preprocessing_name')
        checks.integer(self.labels_offset, 'labels_offset', minimum=0)
        checks.integer(self.num_readers, 'num_readers', minimum=1)
        checks.integer(self.num_preprocessing_threads, 'num_preprocessing_threads', minimum=1)
        checks.boolean(self.skip_corrupt_records, 'skip_corrupt_records')
        checks.boolean(self.use_grayscale, 'use_grayscale')
        if self.dataset != TFRECORD:
            changed = [name for name in ('preprocessing_name', 'labels_offset',
                                         'skip_corrupt_records')
                       if getattr(self, name) != getattr(ModelConfig, name)]
            if changed:
                raise ValueError(f'{changed[0]}={getattr(self, changed[0])!r} with '
                                 f'dataset_name={self.dataset}; accepted: only with '
                                 f'dataset_name={TFRECORD}')

    @property
    def preprocessing(self):
        """The preprocessing of a TFRecord run: the flag, or the model's default."""
        return self.preprocessing_name or DEFAULT_PREPROCESSING[self.model]

    @property
    def normalizer_name(self):
        """The normalizer as nets_factory takes it ('none' -> None)."""
        return None if self.normalizer == 'none' else self.normalizer

    def network_fn(self, num_classes, is_training, weight_decay=0.0, freeze_batch_norm=False,
                   sync_batch_norm=False):
        """nets_factory's network function; unknown model_kwargs -> ValueError.

        ``freeze_batch_norm`` builds every batch norm with ``is_training=False``
        and ``trainable=False`` (through ``normalizer_params``, which the
        networks' arg scopes do not override) while the rest of the network,
        dropout included, follows ``is_training``. ``sync_batch_norm`` builds
        every batch norm with ``sync_replicas=True``: statistics over the
        ``slimnorm.replica_group`` the caller has entered.
        """
        from nets import nets_factory
        kwargs = dict(self.model_kwargs)
        if freeze_batch_norm:
            kwargs['normalizer_params'] = dict(kwargs.get('normalizer_params') or {},
                                               is_training=False, trainable=False)
        if sync_batch_norm:
            kwargs['normalizer_params'] = dict(kwargs.get('normalizer_params') or {},
                                               sync_replicas=True)
        return nets_factory.get_network_fn(
            self.model, num_classes, weight_decay=weight_decay, is_training=is_training,
            normalizer=self.normalizer_name, **kwargs)

    def build_logits(self, images, num_classes, is_training, weight_decay=0.0,
                     freeze_batch_norm=False, sync_batch_norm=False):
        """The network on ``images``; returns ``(logits, end_points)``.

        Images of another size than ``image_size`` (when set) are resized.
        """
        import tensorflow as tf
        network_fn = self.network_fn(num_classes, is_training, weight_decay, freeze_batch_norm,
                                     sync_batch_norm)
        size = self.image_size
        if size and tuple(images.shape[1:3]) != (size, size):
            images = tf.image.resize(images, [size, size])
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

        from slimnorm import precision
        return precision.session_config(self.mixed_precision, tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.threads, inter_op_parallelism_threads=self.threads))

    def graph_fields(self):
        return {name: getattr(self, name) for name in GRAPH_FIELDS}


@dataclasses.dataclass
class TrainConfig(ModelConfig, Hyperparameters):
    """Everything `slimnorm.train.loop.train` needs; research/slim's defaults.

    The optimization fields are `slimnorm.train.hyperparameters`'s.
    """
    train_dir: str = '/tmp/tfmodel/'
    batch_size: int = 32
    # None: no limit (until SIGINT/SIGTERM), as slim's max_number_of_steps.
    max_steps: int = None
    save_every_steps: int = 0
    # slim's save_interval_secs and save_summaries_secs (0: off).
    save_every_secs: float = 600.0
    save_summaries_secs: float = 600.0
    max_to_keep: int = 5
    # slim's log_every_n_steps.
    log_every_steps: int = 10
    seed: int = 0
    # Which split to train on (TFRecords: any split the directory holds).
    split: str = 'train'
    # Fine-tuning, as research/slim's train_image_classifier: a run whose
    # train_dir has no checkpoint yet starts from checkpoint_path (a file
    # prefix or a directory), without the variables under
    # checkpoint_exclude_scopes; variables the checkpoint lacks are an error
    # unless ignore_missing_vars. trainable_scopes: train only these.
    checkpoint_path: str = None
    checkpoint_exclude_scopes: tuple = ()
    trainable_scopes: tuple = ()
    ignore_missing_vars: bool = False
    # Batch norm normalizes with its moving statistics, which stay as they
    # are, and its gamma/beta are not trained (see docs/training_notes.md).
    freeze_batch_norm: bool = False
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
    # research/slim's model_deploy flags (cluster.check_deploy_fields).
    master: str = ''
    worker_replicas: int = 1
    num_ps_tasks: int = 0
    # --- synchronized batch norm (slimnorm.sync_batch_norm) ---
    # Batch statistics over every clone of every worker (batch_norm's
    # sync_replicas=True through normalizer_params); evaluation is unchanged.
    # In a cluster: workers only, gradients all-reduced (train.collective).
    sync_batch_norm: bool = False
    # quantize_delay (Hyperparameters, research/slim's --quantize_delay): -1
    # trains in float; 0 or more rewrites the graph with
    # slimnorm.quantize.create_training_graph(quant_delay=...). Written to
    # run_config.json, so evaluation and export know the run was quantization-aware.

    @property
    def quantized(self):
        return self.quantize_delay >= 0

    def session_config(self):
        session = super().session_config()
        session.device_count.update(clone_device_count(self.num_clones, self.clone_on_cpu))
        return self.replica_session_config(session)

    def check(self):
        super().check()
        self._check_fine_tuning()
        from slimnorm.train import cluster
        cluster.check_scale_out(self)
        self._check_sync_batch_norm()
        from slimnorm import quantize  # TensorFlow-free until a graph is rewritten
        quantize.check_train_config(self)
        if not self.train_dir:
            raise ValueError(f'train_dir={self.train_dir!r}; accepted: the directory '
                             'for checkpoints')
        checks.integer(self.batch_size, 'batch_size', minimum=1)
        checks.optional_integer(self.max_steps, 'max_number_of_steps', minimum=1)
        self.check_hyperparameters()
        if self.max_steps is None and self.lr_schedule in ('cosine', 'step'):
            raise ValueError(f'learning_rate_decay_type={self.lr_schedule!r} without '
                             'max_number_of_steps; accepted: a max_number_of_steps (the '
                             'schedule is a fraction of it) or exponential, fixed, polynomial')
        for name in ('save_every_secs', 'save_summaries_secs'):
            checks.at_least(getattr(self, name), 0, name)
        checks.integer(self.save_every_steps, 'save_every_steps', minimum=0)
        checks.integer(self.max_to_keep, 'max_to_keep', minimum=1)
        checks.integer(self.log_every_steps, 'log_every_steps', minimum=1)
        checks.integer(self.seed, 'seed', minimum=0)
        _check_split(self.split, self.dataset)
        return self

    def _check_fine_tuning(self):
        for name in ('checkpoint_exclude_scopes', 'trainable_scopes'):
            _check_scopes(getattr(self, name), name)
        checks.boolean(self.ignore_missing_vars, 'ignore_missing_vars')
        checks.boolean(self.freeze_batch_norm, 'freeze_batch_norm')
        if not self.checkpoint_path:
            used = [name for name in ('checkpoint_exclude_scopes', 'ignore_missing_vars')
                    if getattr(self, name)]
            if used:
                raise ValueError(f'{used[0]}={getattr(self, used[0])!r} without '
                                 'checkpoint_path; accepted: only with a checkpoint_path '
                                 'to fine-tune from')
        else:
            from slimnorm import checkpoints
            checkpoints.check_path(self.checkpoint_path)
        if self.freeze_batch_norm and self.normalizer not in NORMALIZERS_WITH_MOVING_STATISTICS:
            raise ValueError(f'freeze_batch_norm=True with normalizer={self.normalizer!r}; '
                             f'accepted: normalizer {" or ".join(NORMALIZERS_WITH_MOVING_STATISTICS)}'
                             ' (the others have no moving statistics to freeze)')


    def _check_sync_batch_norm(self):
        checks.boolean(self.sync_batch_norm, 'sync_batch_norm')
        if not self.sync_batch_norm:
            return
        if self.normalizer != 'batch':
            raise ValueError(f'sync_batch_norm=True with normalizer={self.normalizer!r}; '
                             'accepted: normalizer batch (batch renorm and the group, layer '
                             'and instance norms have no synchronized form)')
        if self.freeze_batch_norm:
            raise ValueError('sync_batch_norm=True with freeze_batch_norm=True; accepted: one '
                             'of them (frozen batch norm uses its moving statistics and has '
                             'no batch statistics to synchronize)')
        if self.job_name:
            self._check_collective_cluster()

    def _check_collective_cluster(self):
        """A cluster with sync_batch_norm: workers only (``slimnorm.train.collective``)."""
        from slimnorm.train import cluster
        if cluster.parse_hosts(self.ps_hosts, 'ps_hosts') or self.job_name == 'ps':
            # Every worker's collective steps get the same step ids, and a
            # step's end cleans that id up on each task it used: a shared ps
            # would abort the other workers' steps ("Cleanup <step id>").
            raise ValueError(f'sync_batch_norm=True with ps_hosts={self.ps_hosts!r}, '
                             f'job_name={self.job_name!r}: synchronized batch norm trains a '
                             'cluster of workers only (each keeps a replica of the variables '
                             'and the gradients are all-reduced, see docs/sync_batch_norm.md); '
                             'accepted: --worker_hosts and --job_name worker, no --ps_hosts')
        workers = len(cluster.parse_hosts(self.worker_hosts, 'worker_hosts'))
        if self.replicas_to_aggregate not in (0, workers):
            raise ValueError(f'replicas_to_aggregate={self.replicas_to_aggregate} with '
                             'sync_batch_norm=True: every step averages the gradients of all '
                             f'{workers} workers; accepted: 0 or {workers}')

    @property
    def num_replicas(self):
        """Replicas of the model: clones per worker times workers."""
        from slimnorm.train import cluster
        workers = len(cluster.parse_hosts(self.worker_hosts, 'worker_hosts')) or 1
        return self.num_clones * workers

    def replica_session_config(self, session):
        """``session`` with what synchronized batch norm needs (slimnorm.replicas)."""
        if not self.sync_batch_norm:
            return session
        from slimnorm import replicas
        return replicas.session_config(
            session, timeout_seconds=self.cluster_timeout_secs,
            leader=replicas.DEFAULT_LEADER if self.job_name else None)


def _check_scopes(scopes, name):
    if isinstance(scopes, str) or not all(isinstance(s, str) and s.strip() for s in scopes):
        raise TypeError(f'{name} must be a list of scope names, got {scopes!r}.')


def _check_split(split, dataset):
    if dataset == TFRECORD:
        if not isinstance(split, str) or not split.strip():
            raise ValueError(f'dataset_split_name={split!r}; accepted: the split of the '
                             'TFRecord files (train, validation, ...)')
    else:
        checks.one_of(split, SPLITS, 'dataset_split_name')


def split_scopes(text):
    """slim's comma-separated scope flag -> a tuple of scope names."""
    return tuple(scope.strip() for scope in (text or '').split(',') if scope.strip())


def clone_device_count(num_clones, clone_on_cpu):
    """``ConfigProto.device_count`` giving a session one CPU device per clone."""
    return {'CPU': num_clones} if clone_on_cpu and num_clones > 1 else {}


@dataclasses.dataclass
class EvalConfig(ModelConfig):
    """What `slimnorm.train.evaluation` evaluates; model fields must match the run.

    ``batch_stats`` builds the network with ``is_training=True``: each batch
    normalized with its own statistics, the classic evaluation mistake; it is
    there to show that failure, not to be used.
    """
    batch_size: int = 100
    split: str = 'test'
    moving_average_decay: float = None
    checkpoint_exclude_scopes: tuple = ()
    batch_stats: bool = False
    # slim's max_num_batches: evaluate at most this many batches (None: all).
    max_num_batches: int = None
    # research/slim's eval --quantize: the graph rewritten by
    # slimnorm.quantize.create_eval_graph (a quantization-aware checkpoint).
    quantize: bool = False
    # slim's master: evaluation runs in this process only.
    master: str = ''

    def check(self):
        super().check()
        checks.integer(self.batch_size, 'batch_size', minimum=1)
        checks.optional_integer(self.max_num_batches, 'max_num_batches', minimum=1)
        checks.boolean(self.quantize, 'quantize')
        from slimnorm.quantize import QUANTIZABLE_NORMALIZERS
        if self.quantize and (self.batch_stats or self.normalizer not in
                              QUANTIZABLE_NORMALIZERS):
            raise ValueError(f'quantize=True with batch_stats={self.batch_stats!r}, normalizer='
                             f'{self.normalizer!r}; accepted: normalizer batch or none, '
                             'no --batch_stats')
        if self.master != '':
            raise ValueError(f'master={self.master!r}; accepted: \'\' (evaluation runs in '
                             'this process)')
        _check_split(self.split, self.dataset)
        checks.optional_fraction(self.moving_average_decay, 'moving_average_decay')
        if isinstance(self.checkpoint_exclude_scopes, str):
            raise TypeError('checkpoint_exclude_scopes must be a list of scopes, not one '
                            f'string, got {self.checkpoint_exclude_scopes!r}.')
        return self


def write_run_config(train_dir, config, facts=None):
    """Writes ``config`` (a dataclass, or a dict of its fields) to ``train_dir`` atomically.

    ``facts``: further keys, e.g. what the network was fed (``input_shape``,
    ``num_classes``: `slimnorm.train.saved_run` reads them).
    """
    path = os.path.join(train_dir, RUN_CONFIG_FILE)
    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        fields = config if isinstance(config, dict) else dataclasses.asdict(config)
        json.dump(dict(fields, **(facts or {})), f, indent=2,
                  sort_keys=True)
    os.replace(path + '.tmp', path)


def read_run_config(directory):
    """The run config saved in ``directory`` as a dict, or None."""
    path = os.path.join(directory, RUN_CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)
