"""research/slim-format TFRecords written by the tests themselves.

tf.io.TFRecordWriter and tf.train.Example in the exact layout of slim's
``dataset_utils.image_to_tfexample`` and its file names, not our converter,
so the reader is checked against slim's format rather than against itself.
"""
import os

import numpy as np
import tensorflow as tf


def feature(value):
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def slim_record(image, label, image_format='png', encoded=None, drop=()):
    """A serialized slim Example; ``encoded`` overrides the image bytes, ``drop`` removes keys."""
    if encoded is None:
        encode = tf.io.encode_png if image_format == 'png' else tf.io.encode_jpeg
        encoded = encode(image).numpy()
    features = {'image/encoded': feature(encoded),
                'image/format': feature(image_format.encode()),
                'image/class/label': feature(int(label)),
                'image/height': feature(image.shape[0]),
                'image/width': feature(image.shape[1])}
    for key in drop:
        del features[key]
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write(directory, filenames, images, labels, image_format='png'):
    """Writes the records round-robin into the files; returns them in file order."""
    order = []
    for shard, filename in enumerate(filenames):
        with tf.io.TFRecordWriter(os.path.join(directory, filename)) as writer:
            for index in range(shard, len(images), len(filenames)):
                writer.write(slim_record(images[index], labels[index], image_format))
                order.append(index)
    return order


def write_labels(directory, num_classes):
    """slim's labels.txt with the class numbers as names."""
    with open(os.path.join(directory, 'labels.txt'), 'w') as f:
        f.writelines(f'{i}:{i}\n' for i in range(num_classes))


def digits_uint8(split, classes=range(10)):
    """scikit-learn digits of `split` as uint8 [n, 8, 8, 1], labels renumbered from 0."""
    from slimnorm.data import datasets
    images, labels = datasets.load_digits().split(split)
    keep = np.isin(labels, list(classes))
    pixels = np.round(images[keep] * 255).astype(np.uint8)
    return pixels, labels[keep] - min(classes)


def write_digits(directory, classes=range(10), splits=('train', 'test'), num_shards=2):
    """Digits of ``classes`` as ``digits_<split>_NNNNN-of-NNNNN.tfrecord`` + labels.txt."""
    os.makedirs(directory, exist_ok=True)
    for split in splits:
        images, labels = digits_uint8(split, classes)
        names = ['digits_%s_%05d-of-%05d.tfrecord' % (split, shard, num_shards)
                 for shard in range(num_shards)]
        write(directory, names, images, labels)
    write_labels(directory, len(classes))
    return directory
