"""What the network is fed: (images, labels) tensors for the training and evaluation graphs.

    data = train_inputs(config, start_step)    # in the graph being built
    logits, _ = config.build_logits(data.images, data.num_classes, True)
    ... sess.run(train_op, data.feed(step))

Two sources, behind the same tensors:

- the in-memory sets (digits, fashion_mnist, mnist_dir): placeholders fed
  with numpy batches drawn by `slimnorm.data.datasets.BatchSchedule`, a
  function of ``(seed, step)``, so a resumed run sees the very batches it
  would have seen; ``feed(step)`` returns the feed dict;
- ``dataset='tfrecord'``: research/slim-format TFRecords in ``data_dir``,
  read by `slimnorm.data.tfrecord.read_batches` (tf.data: parallel reads,
  shuffle, decode + preprocessing on threads, prefetch) into the graph;
  ``feed(step)`` returns None. A resumed run restarts at its saved global
  step with the pipeline seeded from ``(seed, start_step)``: it sees other
  batches than the first run did from that step, not the first run's first
  batches again.

A graph builder that wants several batches (one per clone) calls
`train_inputs` once and splits the batch, or calls it once per clone with
``num_shards``/``shard_index`` for per-worker TFRecord shards.

A bad TFRecord fails the step that reads it; `input_error` recognises that
error and turns it into one line naming the split, the directory and what
is wrong with the record.
"""
import dataclasses
import re
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from slimnorm.choices import TFRECORD

tf1 = tf.compat.v1

# Name of the op that yields TFRecord batches; errors raised there are input errors.
BATCH_OP_NAME = 'tfrecord_batch'
# Seeds of a resumed TFRecord run: seed * RESUME_SEED_STRIDE + start step.
RESUME_SEED_STRIDE = 1_000_003


@dataclasses.dataclass
class TrainInputs:
    """One training batch as tensors, and how to produce it at each step."""
    images: tf.Tensor
    labels: tf.Tensor
    num_classes: int
    description: str            # for the log: the data, its size and source
    feed: Callable              # step -> feed_dict (in memory) or None (TFRecords)
    source: str                 # "split 'train' of /data/x", for error lines
    positions: Optional[tf.Tensor] = None  # stream positions (TFRecords, skipping)
    examples_per_epoch: Optional[int] = None
    # Examples in the whole split (all shards): slim's dataset.num_samples.
    split_size: Optional[int] = None
    # TFRecords: the files of the split, counted only when epochs are needed.
    files: tuple = ()


@dataclasses.dataclass
class EvalInputs:
    """Batches of one split, and a generator running fetches over all of it."""
    images: tf.Tensor
    labels: tf.Tensor
    num_classes: int
    name: str                   # data set name of the metrics
    run_batches: Callable       # (sess, fetches) -> iterator of fetched values
    source: str


def _network_default_size(model):
    from nets import nets_factory
    return nets_factory.NETWORKS[model][0].default_image_size


def tfrecord_info(config, split):
    """`slimnorm.data.tfrecord.DatasetInfo` of ``split`` of ``config.data_dir``."""
    from slimnorm.data import tfrecord
    return tfrecord.find_dataset(config.data_dir, split, labels_offset=config.labels_offset)


def _source(info):
    return f'split {info.split!r} of {info.dataset_dir}'


def tfrecord_batches(config, info, batch_size, is_training, seed=0, num_shards=1,
                     shard_index=0):
    """(image size, the tf.data.Dataset of batches) of ``config``'s TFRecord flags."""
    from slimnorm.data import tfrecord
    size = config.image_size or _network_default_size(config.model)
    batches = tfrecord.read_batches(
        info, batch_size, size, preprocessing_name=config.preprocessing,
        is_training=is_training, num_readers=config.num_readers,
        num_preprocessing_threads=config.num_preprocessing_threads, seed=seed,
        num_shards=num_shards, shard_index=shard_index,
        skip_corrupt=config.skip_corrupt_records,
        with_positions=is_training and config.skip_corrupt_records)
    if config.use_grayscale:
        # slim's use_grayscale: one channel after the preprocessing.
        batches = batches.map(lambda images, *rest: (tf.image.rgb_to_grayscale(images),)
                              + tuple(rest))
    return size, batches


def _readable_records(path):
    """Records of one file up to the first that cannot be read.

    A damaged file is not an error here: training reaches the record and
    stops, or skips it, as ``skip_corrupt_records`` says.
    """
    count = 0
    try:
        for _ in tf1.io.tf_record_iterator(path):
            count += 1
    except tf.errors.DataLossError:
        pass
    return count


def epoch_size(config, data):
    """Examples in the training split (slim's num_samples), or None when not needed.

    TFRecord files are counted (read once) only when the learning rate is
    given in epochs (`slimnorm.train.optimization.needs_epoch_size`).
    """
    from slimnorm.train import optimization
    if not optimization.needs_epoch_size(config):
        return None
    if data.split_size:
        return data.split_size
    count = sum(_readable_records(path) for path in data.files)
    if not count:
        raise ValueError(f'{data.source} holds no records; accepted: a split with examples')
    return count


def shard_indices(num_examples, num_shards, shard_index):
    """The examples of shard ``shard_index`` of ``num_shards``: every num_shards-th one."""
    return np.arange(num_examples)[shard_index::num_shards]


def train_inputs(config, start_step=0, num_shards=1, shard_index=0):
    """The training batch of ``config`` (a TrainConfig) in the default graph.

    The batch holds ``batch_size * num_clones`` examples (slim: batch_size is
    per clone). With ``num_shards > 1`` (a cluster's workers) this reads
    shard ``shard_index`` only: TFRecord files, or every num_shards-th
    in-memory example, in a batch order seeded by ``seed + shard_index``.
    """
    batch_size = config.batch_size * getattr(config, 'num_clones', 1)
    if config.dataset == TFRECORD:
        info = tfrecord_info(config, config.split)
        seed = config.seed * RESUME_SEED_STRIDE + start_step
        size, batches = tfrecord_batches(config, info, batch_size, True, seed,
                                          num_shards, shard_index)
        batch = tf1.data.make_one_shot_iterator(batches).get_next(name=BATCH_OP_NAME)
        return TrainInputs(
            images=batch[0], labels=batch[1], num_classes=info.num_classes,
            positions=batch[2] if len(batch) > 2 else None,
            description=(f'TFRecords {_source(info)} ({len(info.files)} files, '
                         f'{info.num_classes} classes, {config.preprocessing} '
                         f'preprocessing to {size}x{size})'),
            feed=lambda step: None, source=_source(info), files=tuple(info.files))
    from slimnorm.data import datasets
    data = config.load_data()
    images, labels = data.split(config.split)
    split_size = len(labels)
    if num_shards > 1:
        keep = shard_indices(len(labels), num_shards, shard_index)
        images, labels = images[keep], labels[keep]
    schedule = datasets.BatchSchedule(len(labels), batch_size, config.seed + shard_index)
    images_ph = tf1.placeholder(tf.float32, (None,) + data.image_shape, name='images')
    labels_ph = tf1.placeholder(tf.int64, [None], name='labels')

    def feed(step):
        index = schedule.indices(step)
        return {images_ph: images[index], labels_ph: labels[index]}

    return TrainInputs(
        images=images_ph, labels=labels_ph, num_classes=data.num_classes, feed=feed,
        description=f'{data.name} {data.image_shape}, {len(labels)} examples',
        source=f'split {config.split!r} of {data.name}', examples_per_epoch=len(labels),
        split_size=split_size)


def eval_inputs(config, data=None):
    """The evaluation batches of ``config`` (an EvalConfig) in the default graph.

    ``data``: an already loaded in-memory set (None: load it).
    """
    if config.dataset == TFRECORD:
        info = tfrecord_info(config, config.split)
        _, batches = tfrecord_batches(config, info, config.batch_size, False)
        iterator = tf1.data.make_initializable_iterator(batches)
        images, labels = iterator.get_next(name=BATCH_OP_NAME)

        def run_batches(sess, fetches):
            sess.run(iterator.initializer)
            while True:
                try:
                    yield sess.run(fetches)
                except tf.errors.OutOfRangeError:
                    return

        return EvalInputs(images, labels, info.num_classes, TFRECORD, run_batches,
                          _source(info))
    data = data or config.load_data()
    array_images, array_labels = data.split(config.split)
    images = tf1.placeholder(tf.float32, (None,) + data.image_shape, name='images')
    labels = tf1.placeholder(tf.int64, [None], name='labels')

    def run_batches(sess, fetches):
        for start in range(0, len(array_labels), config.batch_size):
            stop = start + config.batch_size
            yield sess.run(fetches, {images: array_images[start:stop],
                                     labels: array_labels[start:stop]})

    return EvalInputs(images, labels, data.num_classes, data.name, run_batches,
                      f'split {config.split!r} of {data.name}')


def input_error(err, source):
    """One line for an error raised while reading TFRecords, else None.

    ``err``: a tf.errors.OpError of ``Session.run``; ``source``: the inputs'
    ``source``. A bad record (missing key, bytes that do not decode, label
    out of range, a damaged file) fails the op named BATCH_OP_NAME.
    """
    if not isinstance(err, (tf.errors.InvalidArgumentError, tf.errors.DataLossError)):
        return None
    if BATCH_OP_NAME not in err.message and (err.op is None or
                                             err.op.name != BATCH_OP_NAME):
        return None
    problem = record_problem(err.message)
    if isinstance(err, tf.errors.DataLossError):
        problem = f'a TFRecord file is damaged: {problem}'
    return f'bad record in {source}: {problem}'


# Lines of a Session error message that say where, not what.
_TRACE_LINES = ('Graph execution error', 'Detected at node', 'File ', 'Node:', '[[',
                'Original stack trace')


def record_problem(message):
    """The part of a tf.data error message that says what is wrong."""
    lines = [line.strip() for line in message.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_TRACE_LINES)]
    line = next((line for line in lines if 'Iterator::' in line), lines[0] if lines else '')
    line = re.sub(r'^.*Iterator::[\w:]*: ', '', line)
    assertion = re.match(r'assertion failed: \[(.*)\] \[(.*?)\]$', line)
    if assertion:
        return f'{assertion.group(1)} {assertion.group(2)}'
    return line


class SkipCounter:
    """Counts the records skip_corrupt_records dropped, from the positions delivered.

    The stream is ordered, so every record up to the largest position
    delivered that was not delivered itself was dropped.
    """

    def __init__(self):
        self.last_position = -1
        self.delivered = 0

    def add(self, positions):
        positions = np.asarray(positions)
        if positions.size:
            self.last_position = max(self.last_position, int(positions.max()))
        self.delivered += positions.size

    @property
    def skipped(self):
        return self.last_position + 1 - self.delivered
