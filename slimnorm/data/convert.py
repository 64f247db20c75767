"""Build research/slim-format TFRecords: from a folder of images, or a loaded set.

    slimnorm build-tfrecords --image_dir photos/ --dataset_dir /data/photos \\
        --dataset_name photos --num_shards 5 --validation_fraction 0.1
    slimnorm build-tfrecords --from_dataset digits --dataset_dir /data/digits

``--image_dir`` holds one sub-folder per class (its name is the class name;
classes are numbered in sorted order) of JPEG or PNG files, as slim's flowers
converter expects. The images are shuffled with ``--seed``, the first
``--validation_fraction`` of them become split ``validation``, the rest
``train``; each split is written to ``--num_shards`` files
``<name>_<split>_NNNNN-of-NNNNN.tfrecord`` with slim's keys (the image bytes
are stored as they are, not re-encoded), and ``labels.txt`` lists the classes.

``--from_dataset`` writes one of `slimnorm.data.datasets`' in-memory sets
(e.g. digits) as PNGs, keeping its own ``train``/``test`` split, as slim's
mnist and cifar10 converters did: real data for tests, nothing downloaded.

Flags are checked before TensorFlow is imported; a bad one is one line and
exit status 2.
"""
import os
import random
import struct
import sys

from slimnorm import checks
from slimnorm.choices import DATASETS
from slimnorm.cli.common import ArgumentParser, quiet_tensorflow, run_cli

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_JPEG_MAGIC = b'\xff\xd8'


def shard_filename(dataset_dir, dataset_name, split, shard, num_shards):
    """slim's flowers naming: ``<name>_<split>_NNNNN-of-NNNNN.tfrecord``."""
    return os.path.join(dataset_dir, '%s_%s_%05d-of-%05d.tfrecord' % (
        dataset_name, split, shard, num_shards))


def image_example(encoded, image_format, height, width, label):
    """A tf.train.Example with slim's ``image_to_tfexample`` keys."""
    import tensorflow as tf

    def int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    def data(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        'image/encoded': data(encoded), 'image/format': data(image_format),
        'image/class/label': int64(label),
        'image/height': int64(height), 'image/width': int64(width)}))


def _image_size(path, encoded):
    """(format, height, width) of JPEG/PNG bytes; ValueError naming the file."""
    if encoded.startswith(_PNG_MAGIC) and len(encoded) >= 24:
        width, height = struct.unpack('>II', encoded[16:24])
        return b'png', height, width
    if encoded.startswith(_JPEG_MAGIC):
        import tensorflow as tf
        try:
            height, width, _ = tf.io.extract_jpeg_shape(encoded).numpy()
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(f'{path} is not a readable JPEG ({err.message})') from err
        return b'jpg', int(height), int(width)
    raise ValueError(f'{path} is neither JPEG nor PNG (its first bytes are '
                     f'{encoded[:8]!r})')


def list_image_folder(image_dir):
    """([(path, class id)], [class names]) of a folder of class sub-folders."""
    if not os.path.isdir(image_dir):
        raise ValueError(f'image_dir={image_dir!r} is not a directory')
    classes = sorted(entry for entry in os.listdir(image_dir)
                     if os.path.isdir(os.path.join(image_dir, entry)))
    images = [(os.path.join(image_dir, name, filename), label)
              for label, name in enumerate(classes)
              for filename in sorted(os.listdir(os.path.join(image_dir, name)))
              if filename.lower().endswith(IMAGE_EXTENSIONS)]
    if not images:
        raise ValueError(f'image_dir={image_dir!r} has no class sub-folders of '
                         f'{"/".join(IMAGE_EXTENSIONS)} images (it holds '
                         f'{sorted(os.listdir(image_dir))[:10]})')
    return images, classes


def _check_output(dataset_dir, dataset_name):
    """Creates dataset_dir; refuses to mix new shards with old ones."""
    os.makedirs(dataset_dir, exist_ok=True)
    old = sorted(f for f in os.listdir(dataset_dir)
                 if f == 'labels.txt' or (f.startswith(dataset_name + '_')
                                          and f.endswith('.tfrecord')))
    if old:
        raise ValueError(f'dataset_dir={dataset_dir!r} already holds {old[:5]}: '
                         'remove them or choose another directory')


def write_split(examples, dataset_dir, dataset_name, split, num_shards,
                out=sys.stdout):
    """Writes a list of Example builders to num_shards files, with a progress line.

    On a terminal the line is rewritten in place (``\\r``) every 1 %; into a
    file or pipe (a log) one line per shard is written instead.
    """
    import tensorflow as tf
    total = len(examples)
    per_shard = -(-total // num_shards)
    terminal = getattr(out, 'isatty', lambda: False)()
    step = max(1, total // 100) if terminal else per_shard  # 1 % steps, or each shard
    start, end = ('\r', '') if terminal else ('', '\n')
    for shard in range(num_shards):
        path = shard_filename(dataset_dir, dataset_name, split, shard, num_shards)
        with tf.io.TFRecordWriter(path) as writer:
            for index in range(shard * per_shard, min(total, (shard + 1) * per_shard)):
                writer.write(examples[index]().SerializeToString())
                if (index + 1) % step == 0 or index + 1 == total:
                    out.write(f'{start}>> {split}: image {index + 1}/{total}, '
                              f'shard {shard + 1}/{num_shards}{end}')
                    out.flush()
    if terminal:
        out.write('\n')
    out.flush()


def convert_image_folder(image_dir, dataset_dir, dataset_name, num_shards=5,
                         validation_fraction=0.1, seed=0, out=sys.stdout):
    """Folder of class sub-folders -> train/validation TFRecords + labels.txt.

    Returns {split: number of images}.
    """
    checks.integer(num_shards, 'num_shards', minimum=1)
    checks.unit_interval(validation_fraction, 'validation_fraction')
    images, classes = list_image_folder(image_dir)
    for path, _ in images:  # a wrong file is named before anything is written
        with open(path, 'rb') as f:
            head = f.read(len(_PNG_MAGIC))
        if not head.startswith((_PNG_MAGIC, _JPEG_MAGIC)):
            raise ValueError(f'{path} is neither JPEG nor PNG (its first bytes are {head!r})')
    _check_output(dataset_dir, dataset_name)
    random.Random(seed).shuffle(images)
    num_validation = int(round(validation_fraction * len(images)))
    splits = {'validation': images[:num_validation], 'train': images[num_validation:]}

    def example(path, label):
        def build():
            with open(path, 'rb') as f:
                encoded = f.read()
            image_format, height, width = _image_size(path, encoded)
            return image_example(encoded, image_format, height, width, label)
        return build

    from slimnorm.data.tfrecord import write_label_file
    for split, items in splits.items():
        if items:
            write_split([example(*item) for item in items], dataset_dir,
                        dataset_name, split, num_shards, out)
    write_label_file(dict(enumerate(classes)), dataset_dir)
    return {split: len(items) for split, items in splits.items()}


def convert_dataset(name, dataset_dir, dataset_name=None, num_shards=1,
                    data_dir=None, out=sys.stdout):
    """An in-memory set of `slimnorm.data.datasets` -> PNG TFRecords.

    Keeps the set's train/test split; class names are the label numbers.
    Returns {split: number of images}.
    """
    import numpy as np
    import tensorflow as tf

    from slimnorm.data import datasets
    from slimnorm.data.tfrecord import write_label_file
    checks.integer(num_shards, 'num_shards', minimum=1)
    dataset = datasets.load(name, data_dir)
    dataset_name = dataset_name or name
    _check_output(dataset_dir, dataset_name)
    counts = {}
    for split in ('train', 'test'):
        images, labels = dataset.split(split)
        pixels = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)

        def example(image, label):
            return lambda: image_example(tf.io.encode_png(image).numpy(), b'png',
                                         image.shape[0], image.shape[1], int(label))
        write_split([example(i, label) for i, label in zip(pixels, labels)],
                    dataset_dir, dataset_name, split, num_shards, out)
        counts[split] = len(labels)
    write_label_file({i: str(i) for i in range(dataset.num_classes)}, dataset_dir)
    return counts


def build_parser(prog=None):
    parser = ArgumentParser(prog=prog or 'slimnorm build-tfrecords', description=(
        'Write research/slim-format TFRecords (and labels.txt) from a folder of class '
        'sub-folders of JPEG/PNG images, or from an installed in-memory data set.'))
    add = parser.add_argument
    add('--dataset_dir', required=True, help='output directory')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image_dir', help='folder of class sub-folders of images')
    source.add_argument('--from_dataset', help=f'in-memory set: {"|".join(DATASETS)}')
    add('--data_dir', help='input files of --from_dataset mnist_dir/fashion_mnist')
    add('--dataset_name', help='file prefix (default: the folder or data set name)')
    add('--num_shards', type=int, default=None, help='files per split (default 5 for '
        '--image_dir, 1 for --from_dataset)')
    add('--validation_fraction', type=float, default=None,
        help='share of --image_dir images for split validation (default 0.1)')
    add('--seed', type=int, default=0, help='seed of the train/validation split')
    return parser


def _run(args):
    checks.integer(args.seed, 'seed', minimum=0)
    if args.num_shards is not None:
        checks.integer(args.num_shards, 'num_shards', minimum=1)
    if args.from_dataset is not None:
        checks.one_of(args.from_dataset, DATASETS, 'from_dataset')
        if args.validation_fraction is not None:
            raise ValueError('validation_fraction is for --image_dir; --from_dataset '
                             f'{args.from_dataset} keeps its own train/test split')
    else:
        fraction = 0.1 if args.validation_fraction is None else args.validation_fraction
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f'validation_fraction={fraction!r} must be in [0, 1)')
    quiet_tensorflow()
    if args.from_dataset is not None:
        counts = convert_dataset(args.from_dataset, args.dataset_dir, args.dataset_name,
                                 args.num_shards or 1, args.data_dir)
    else:
        name = args.dataset_name or os.path.basename(os.path.normpath(args.image_dir))
        counts = convert_image_folder(args.image_dir, args.dataset_dir, name,
                                      args.num_shards or 5, fraction, args.seed)
    print('wrote ' + ', '.join(f'{n} {split}' for split, n in counts.items())
          + f' images to {args.dataset_dir}')
    return 0


def main(argv=None, prog=None):
    """``slimnorm build-tfrecords``: returns the exit status."""
    return run_cli(build_parser(prog), _run, argv)
