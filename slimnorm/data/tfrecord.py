"""research/slim's TFRecord data sets, read with tf.data.

    info = find_dataset('/data/flowers', 'train', dataset_name='flowers')
    images, labels = read_batches(info, batch_size=32, image_size=224,
                                  preprocessing_name='inception',
                                  is_training=True)

The records are `tf.train.Example`s with slim's keys (its
``dataset_utils.image_to_tfexample`` and ImageNet's ``build_imagenet_data.py``
write the same ones): ``image/encoded`` (JPEG or PNG bytes), ``image/format``,
``image/class/label`` (int64), and optionally ``image/height``/``image/width``
(not needed: the decoder knows the size).

Files of a split are found by the names slim's converters give them, tried in
order (the first pattern that matches is used), see `file_patterns`:
``<name>_<split>_NNNNN-of-NNNNN.tfrecord`` (flowers), ``<name>_<split>.tfrecord``
(cifar10, mnist) and ImageNet's ``<split>-NNNNN-of-NNNNN``. ``labels.txt`` in
the same directory (``<id>:<name>`` per line) gives the class names and the
class count (the largest id + 1). ``labels_offset`` is slim's: it is
subtracted from every label and from the class count (an ImageNet set whose
label 0 is "background" read with labels_offset=1 has 1000 classes).

The training pipeline is slim's, on tf.data: the file list sharded per worker
(``num_shards``, ``shard_index``) and shuffled, ``num_readers`` files read
in parallel (interleave), a shuffle buffer, decode + preprocessing on
``num_preprocessing_threads``, batch, prefetch. Each record's preprocessing
seed is derived from (``seed``, shard, position in the stream), so the images
do not depend on the number of threads. Evaluation reads every record of the
worker's files once, in file order.
"""
import glob
import os
from dataclasses import dataclass

import tensorflow as tf

from slimnorm import checks
from slimnorm.data import preprocessing

LABELS_FILENAME = 'labels.txt'

# What the reader needs from each record; height/width are optional.
FEATURES = {
    'image/encoded': tf.io.FixedLenFeature((), tf.string),
    'image/format': tf.io.FixedLenFeature((), tf.string, default_value='jpeg'),
    'image/class/label': tf.io.FixedLenFeature((), tf.int64),
}


def file_patterns(split, dataset_name=None):
    """The glob patterns of a split's files, in the order they are tried."""
    name = dataset_name or '*'
    return (f'{name}_{split}_*-of-*.tfrecord',
            f'{name}_{split}.tfrecord',
            f'{split}-[0-9]*-of-[0-9]*')


def read_label_file(dataset_dir, filename=LABELS_FILENAME):
    """{id: name} of slim's ``labels.txt`` (``<id>:<name>`` per line)."""
    path = os.path.join(dataset_dir, filename)
    names = {}
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line.strip():
                continue
            label, sep, name = line.partition(':')
            if not sep or not label.strip().isdigit():
                raise ValueError(f'{path} line {number}: {line!r} is not <id>:<name>')
            names[int(label)] = name
    return names


def write_label_file(labels_to_class_names, dataset_dir, filename=LABELS_FILENAME):
    """Writes ``labels.txt`` as slim's ``dataset_utils.write_label_file``."""
    with open(os.path.join(dataset_dir, filename), 'w', encoding='utf-8') as f:
        for label in sorted(labels_to_class_names):
            f.write(f'{label}:{labels_to_class_names[label]}\n')


@dataclass(frozen=True)
class DatasetInfo:
    """The files of one split and its classes (labels_offset applied)."""
    dataset_dir: str
    split: str
    files: tuple
    num_classes: int
    class_names: dict  # {label after labels_offset: name}
    labels_offset: int


def find_dataset(dataset_dir, split, dataset_name=None, labels_offset=0,
                 num_classes=None):
    """Finds a split's files and its classes.

    Args:
      dataset_dir: the directory slim's converter wrote.
      split: 'train', 'validation', 'test', ...
      dataset_name: the files' prefix (e.g. 'flowers'); None accepts any.
      labels_offset: subtracted from the labels and the class count.
      num_classes: the class count before labels_offset; None reads it
        from labels.txt (needed then).

    Raises:
      ValueError: no directory, no files for the split (the message names
        the directory, the patterns tried and what is there), no labels.txt
        and no num_classes, or labels_offset not below the class count.
    """
    checks.integer(labels_offset, 'labels_offset', minimum=0)
    patterns = file_patterns(split, dataset_name)
    if not os.path.isdir(dataset_dir):
        parent = os.path.dirname(os.path.abspath(dataset_dir))
        raise ValueError(f'dataset_dir={dataset_dir!r} is not a directory (split {split!r} '
                         f'would be looked for as {", ".join(patterns)}); {parent} holds '
                         f'{_listing(parent)}')
    files = ()
    for pattern in patterns:
        files = tuple(sorted(glob.glob(os.path.join(glob.escape(dataset_dir), pattern))))
        if files:
            break
    if not files:
        raise ValueError(f'no TFRecord files for split {split!r} in {dataset_dir}: '
                         f'tried {", ".join(patterns)}; the directory holds '
                         f'{_listing(dataset_dir)}')
    names = {}
    if os.path.exists(os.path.join(dataset_dir, LABELS_FILENAME)):
        names = read_label_file(dataset_dir)
    if num_classes is None:
        if not names:
            raise ValueError(f'num_classes=None and {dataset_dir} has no (or an empty) '
                             f'{LABELS_FILENAME}: give the class count')
        num_classes = max(names) + 1
    checks.integer(num_classes, 'num_classes', minimum=1)
    if labels_offset >= num_classes:
        raise ValueError(f'labels_offset={labels_offset} leaves no class of the '
                         f'{num_classes} in {dataset_dir}')
    return DatasetInfo(
        dataset_dir=dataset_dir, split=split, files=files,
        num_classes=num_classes - labels_offset, labels_offset=labels_offset,
        class_names={label - labels_offset: name for label, name in names.items()
                     if label >= labels_offset})


# The first bytes of the formats tf.io.decode_image reads.
IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF8', b'BM')


def _listing(directory, limit=10):
    """The first entries of ``directory``, for an error message."""
    if not os.path.isdir(directory):
        return 'nothing (it does not exist)'
    present = sorted(os.listdir(directory))
    shown = ', '.join(present[:limit]) + (f', ... ({len(present)} in all)'
                                          if len(present) > limit else '')
    return shown or 'nothing'


def decode(serialized, channels=3, num_classes=None, labels_offset=0):
    """One serialized Example -> (uint8 [h, w, channels] image, int64 label).

    Bad records fail when the element is computed, with an
    InvalidArgumentError whose message names what is wrong: a missing key
    (TensorFlow's "Feature: image/encoded ... is required"), bytes that are
    no JPEG/PNG/GIF/BMP (with the record's ``image/format``), bytes that do
    not decode, and, given ``num_classes``, a label that is not in
    ``[0, num_classes)`` once ``labels_offset`` is subtracted.
    """
    features = tf.io.parse_single_example(serialized, FEATURES)
    encoded = features['image/encoded']
    known = tf.reduce_any([tf.equal(tf.strings.substr(encoded, 0, len(magic)), magic)
                           for magic in IMAGE_MAGIC])
    checked = [tf.debugging.Assert(known, [
        'image/encoded is not JPEG, PNG, GIF or BMP bytes; its image/format is',
        features['image/format']])]
    label = features['image/class/label'] - labels_offset
    if num_classes is not None:
        checked.append(tf.debugging.Assert(
            tf.logical_and(label >= 0, label < num_classes),
            [f'image/class/label minus labels_offset {labels_offset} is outside '
             f'[0, {num_classes}):', label]))
    with tf.control_dependencies(checked):
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image, label


def _sharded_files(info, num_shards, shard_index):
    """This worker's files, or all of them when there are fewer than workers."""
    checks.integer(num_shards, 'num_shards', minimum=1)
    checks.integer(shard_index, 'shard_index', minimum=0)
    if shard_index >= num_shards:
        raise ValueError(f'shard_index={shard_index} must be below num_shards={num_shards}')
    files = tf.data.Dataset.from_tensor_slices(list(info.files))
    if len(info.files) >= num_shards:
        return files.shard(num_shards, shard_index), False
    return files, True


def read_batches(info, batch_size, image_size, preprocessing_name='inception',
                 is_training=True, num_readers=4, num_preprocessing_threads=4,
                 shuffle_buffer=1024, seed=0, num_shards=1, shard_index=0,
                 channels=3, repeat=None, skip_corrupt=False, with_positions=False):
    """A batched ``tf.data.Dataset`` of (images [-1, 1], labels) of one split.

    A bad record (see `decode`) fails the batch that holds it with an
    InvalidArgumentError naming the problem; ``skip_corrupt`` drops such
    records instead. ``with_positions`` adds a third element, each record's
    position in the stream (0, 1, ... before the records are dropped), from
    which the dropped ones can be counted (`slimnorm.train.inputs.SkipCounter`).

    Args:
      info: a `DatasetInfo` from `find_dataset`.
      batch_size: images per batch (training drops the last partial batch).
      image_size: square output size of the preprocessing.
      preprocessing_name: a name of `preprocessing.get_preprocessing`.
      is_training: training path (shuffled, repeated, distorted) or eval.
      num_readers: files read in parallel.
      num_preprocessing_threads: parallel decode + preprocessing calls.
      shuffle_buffer: records in the shuffle buffer (training).
      seed: seeds the file order, the shuffle and the preprocessing.
      num_shards, shard_index: this worker's part: every num_shards-th file,
        or every num_shards-th record when there are fewer files than workers.
      channels: channels decoded (3: grey images become RGB).
      repeat: repeat forever (default: when training).
      skip_corrupt: drop bad records instead of failing.
      with_positions: yield (images, labels, positions).
    """
    checks.integer(batch_size, 'batch_size', minimum=1)
    checks.integer(image_size, 'image_size', minimum=1)
    checks.integer(num_readers, 'num_readers', minimum=1)
    checks.integer(num_preprocessing_threads, 'num_preprocessing_threads', minimum=1)
    checks.integer(seed, 'seed', minimum=0)
    preprocess = preprocessing.get_preprocessing(preprocessing_name, is_training)
    # Ordered interleave and map: files are read in parallel, but the stream
    # (and so each record's preprocessing seed) depends only on `seed`.
    files, shard_records = _sharded_files(info, num_shards, shard_index)
    if is_training:
        # repeat() below re-runs this shuffle: a new file order every epoch.
        files = files.shuffle(len(info.files), seed=seed, reshuffle_each_iteration=True)
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=num_readers,
                                   num_parallel_calls=num_readers, deterministic=True)
    else:
        records = files.flat_map(tf.data.TFRecordDataset)
    if shard_records:
        records = records.shard(num_shards, shard_index)
    if is_training:
        records = records.shuffle(shuffle_buffer, seed=seed)
    if repeat if repeat is not None else is_training:
        records = records.repeat()
    stream_seed = seed * num_shards + shard_index

    def parse(index, serialized):
        image, label = decode(serialized, channels, info.num_classes, info.labels_offset)
        image = preprocess(image, image_size, image_size,
                           seed=tf.stack([tf.constant(stream_seed, tf.int64), index]))
        image.set_shape([image_size, image_size, channels])
        return (image, label, index) if with_positions else (image, label)

    examples = records.enumerate().map(
        parse, num_parallel_calls=num_preprocessing_threads, deterministic=True)
    if skip_corrupt:
        examples = examples.ignore_errors()
    return examples.batch(batch_size, drop_remainder=is_training).prefetch(
        tf.data.AUTOTUNE)

