"""The run a checkpoint came from: what every command given a checkpoint builds.

    run = saved_run.find('runs/digits')            # run_config.json beside it, or None
    run.agree('model_name', args.model_name, 'model')   # a contradiction: ValueError
    run.input_shape, run.num_classes                # what the network is fed, its logits

Training writes ``run_config.json`` beside its checkpoints
(`slimnorm.train.config.write_run_config`); eval, export, precise BN and
fine-tuning (the source's network and normalizer only) read it here, so
that the network they build is the one the checkpoint holds: a flag left
out takes the run's value, and a flag that contradicts it is refused with
one line naming both values. A checkpoint without one (research/slim's) is
checked variable by variable against the graph built from the flags
(:func:`check_variables`) before anything is written.

No TensorFlow at import time: the commands check their flags with this
before TensorFlow loads.
"""
import dataclasses
import os

from slimnorm import checkpoints
from slimnorm.choices import DATASETS
from slimnorm.train import config as run_config

# (height, width, channels) of the fixed in-memory sets (slimnorm.data.datasets)
# and their classes, for a run_config.json written before training recorded
# input_shape and num_classes (mnist_dir: read from its files).
DATA_SHAPES = {'digits': (8, 8, 1), 'fashion_mnist': (28, 28, 1)}
DATA_CLASSES = {'digits': 10, 'fashion_mnist': 10}
# TFRecords are decoded to RGB (slimnorm.data.tfrecord.read_batches).
TFRECORD_CHANNELS = 3
# Written by precise BN: its moving statistics are not an EMA of training.
PRECISE_BN_KEY = 'precise_bn'


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """The fields of one run_config.json and where it is."""
    path: str
    fields: dict

    @property
    def model(self):
        return self.fields.get('model')

    @property
    def normalizer(self):
        return self.fields.get('normalizer')

    @property
    def model_kwargs(self):
        return dict(self.fields.get('model_kwargs') or {})

    @property
    def data_format(self):
        return self.model_kwargs.get('data_format', 'NHWC')

    @property
    def dataset(self):
        return self.fields.get('dataset')

    @property
    def labels_offset(self):
        return self.fields.get('labels_offset', 0)

    @property
    def input_shape(self):
        """(height, width, channels) the network was fed."""
        if self.fields.get('input_shape'):
            return tuple(self.fields['input_shape'])
        size = self.fields.get('image_size') or 0
        if self.dataset in DATASETS:
            height, width, channels = (DATA_SHAPES.get(self.dataset)
                                       or self.load_data().image_shape)
            return (size, size, channels) if size else (height, width, channels)
        if not size:
            from nets import nets_factory
            size = nets_factory.NETWORKS[self.model][0].default_image_size
        return (size, size, TFRECORD_CHANNELS)

    @property
    def image_size(self):
        height, width, _ = self.input_shape
        return height if height == width else None

    @property
    def num_classes(self):
        """The logits of the network (labels_offset already subtracted)."""
        if self.fields.get('num_classes'):
            return int(self.fields['num_classes'])
        if self.dataset in DATA_CLASSES:
            return DATA_CLASSES[self.dataset]
        if self.dataset in DATASETS:  # mnist_dir: one more than its largest label
            return self.load_data().num_classes
        from slimnorm.data import tfrecord
        split = self.fields.get('split') or 'train'
        return tfrecord.find_dataset(self.fields.get('data_dir'), split,
                                     labels_offset=self.labels_offset).num_classes

    def load_data(self):
        """The run's in-memory data set (raises when it cannot be read here)."""
        from slimnorm.data import datasets
        return datasets.load(self.dataset, self.fields.get('data_dir'))

    @property
    def precise_bn(self):
        return self.fields.get(PRECISE_BN_KEY)

    def model_config_fields(self):
        """The ModelConfig fields of the run (network and input)."""
        names = run_config.GRAPH_FIELDS + run_config.INPUT_FIELDS
        return {name: self.fields[name] for name in names if name in self.fields}

    def agree(self, flag, value, field=None, run_value=None, otherwise=''):
        """Raises ValueError when a given flag (not None) contradicts the run.

        ``field``: the run_config.json key (default: ``flag``); ``run_value``:
        the run's value when it is not stored under one key; ``otherwise``:
        the legitimate way to another value, if there is one.
        """
        field = field or flag
        if run_value is None:
            run_value = self.fields.get(field)
        if value is None or run_value is None or value == run_value:
            return
        raise ValueError(f'{flag}={value!r} contradicts {self.path}: {field}={run_value!r} '
                         f'(the run the checkpoint comes from); accepted: {run_value!r} or '
                         f'no --{flag}' + (f', or {otherwise}' if otherwise else ''))


def find(checkpoint_path):
    """The SavedRun of a checkpoint (a directory or a prefix), or None."""
    if not checkpoint_path:
        return None
    directory = checkpoints.directory(checkpoint_path)
    fields = run_config.read_run_config(directory)
    if fields is None:
        return None
    return SavedRun(os.path.join(directory, run_config.RUN_CONFIG_FILE), fields)


def agree_all(run, given, names):
    """``run.agree`` for each of ``names`` of the dict ``given`` (None: no run)."""
    if run is None:
        return
    for name in names:
        run.agree(_FLAG_NAMES.get(name, name), given.get(name), name)


# research/slim's spelling of the ModelConfig fields in error lines.
_FLAG_NAMES = {'model': 'model_name', 'dataset': 'dataset_name', 'data_dir': 'dataset_dir',
               'split': 'dataset_split_name'}


# What fine-tuning takes from its source's run: the network, not the data.
FINE_TUNING_FIELDS = ('model', 'normalizer')


def fine_tuning_fields(checkpoint_path, given):
    """ModelConfig fields of a run warm-started from ``checkpoint_path``.

    ``given``: the fields set by flags. The source's model and normalizer
    are the defaults, and a flag contradicting them is refused; its
    model_kwargs are the default (a flag may change them: the shapes are
    checked when the variables are restored).
    """
    run = find(checkpoint_path)
    if run is None:
        return dict(given)
    agree_all(run, given, FINE_TUNING_FIELDS)
    fields = {name: run.fields[name] for name in FINE_TUNING_FIELDS + ('model_kwargs',)
              if name in run.fields}
    fields.update(given)
    return fields


def run_facts(config, images, num_classes):
    """What training records beside its config: the network's input shape and classes."""
    height, width, channels = images.shape.as_list()[1:]
    if config.image_size:
        height = width = config.image_size
    return {'input_shape': [height, width, channels], 'num_classes': num_classes}


def check_resumed_variables(graph, checkpoint, train_dir):
    """check_variables of a training graph against the checkpoint it is to resume."""
    check_variables(graph_variables(graph), checkpoint,
                    accepted=f'a new train_dir, or the network train_dir={train_dir!r} holds')


def graph_variables(graph):
    """{name: shape list} of the global variables of ``graph``."""
    import tensorflow as tf
    return {v.op.name: v.shape.as_list()
            for v in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)}


def check_variables(variables, checkpoint,
                    accepted='a checkpoint of this network (check --model_name, --normalizer, '
                    '--model_kwargs and the image flags)'):
    """Raises ValueError (one line) unless the checkpoint holds every variable with its shape.

    ``variables``: {name: shape} of the graph (`graph_variables`). A shape
    mismatch is named first (variable, graph shape, checkpoint shape), then
    a variable the checkpoint lacks, each in the graph's order (the input
    layer first).
    """
    import tensorflow as tf
    stored = {name: list(shape) for name, shape in tf.train.list_variables(checkpoint)}
    shapes = [(name, list(shape), stored[name]) for name, shape in variables.items()
              if name in stored and list(shape) != stored[name]]
    missing = [name for name in variables if name not in stored]
    more = len(shapes) + len(missing) - 1
    tail = f' ({more} more variables differ)' if more else ''
    if shapes:
        name, graph_shape, saved_shape = shapes[0]
        raise ValueError(f'variable {name} has shape {graph_shape} in the graph but '
                         f'{saved_shape} in checkpoint {checkpoint!r}{tail}; accepted: {accepted}')
    if missing:
        raise ValueError(f'variable {missing[0]} {variables[missing[0]]} of the graph is not in '
                         f'checkpoint {checkpoint!r}{tail}; accepted: {accepted}')
