"""Images of a training run's own data, for checking and calibrating exports.

An export is checked on a batch of the data the checkpoint was trained on,
and post-training int8 quantization is calibrated on it: the data set named
by the `run_config.json` that training wrote beside the checkpoint
(`slimnorm.train.config`), read as evaluation reads it (in-memory sets:
images in [0, 1]; TFRecords: the run's eval preprocessing), resized to the
exported input's height and width as the network's graph resizes them.
"""

import numpy as np
import tensorflow as tf

from slimnorm.choices import TFRECORD
from slimnorm.train import config as run_config

tf1 = tf.compat.v1

SAMPLE_SEED = 0


def model_config(checkpoint_path):
    """The run's ModelConfig (graph and input fields of run_config.json), or None."""
    from slimnorm.train import saved_run
    run = saved_run.find(checkpoint_path)
    if run is None:
        return None
    return run_config.ModelConfig(**run.model_config_fields()).check()


def eval_split(config):
    """The split evaluation reads: test, or for TFRecords validation where the set has one."""
    if config.dataset != TFRECORD:
        return 'test'
    from slimnorm.data import tfrecord
    try:
        tfrecord.find_dataset(config.data_dir, 'validation', labels_offset=config.labels_offset)
    except (ValueError, OSError):
        return 'test'  # e.g. a set converted with train and test splits only
    return 'validation'


def _resize(images, height, width):
    if images.shape[1:3] == (height, width):
        return images.astype(np.float32)
    with tf.Graph().as_default(), tf1.Session() as sess:
        return sess.run(tf.image.resize(images.astype(np.float32), [height, width]))


def _tfrecord_images(config, split, count):
    from slimnorm.train import inputs
    info = inputs.tfrecord_info(config, split)
    batches = []
    with tf.Graph().as_default():
        _, dataset = inputs.tfrecord_batches(config, info, min(count, 64), is_training=False)
        images = tf1.data.make_one_shot_iterator(dataset).get_next()[0]
        with tf1.Session() as sess:
            while sum(len(b) for b in batches) < count:
                try:
                    batches.append(sess.run(images))
                except tf.errors.OutOfRangeError:
                    break
    return np.concatenate(batches)[:count] if batches else np.zeros((0, 1, 1, 1), np.float32)


def images(config, split, count, input_shape):
    """Up to `count` images of `split`, shaped for an input of `input_shape` (NHWC).

    In-memory sets: a seeded sample of the split; TFRecords: its first
    images. Raises ValueError (one line) when the split is empty or its
    images have another number of channels than the input.
    """
    if config.dataset == TFRECORD:
        array = _tfrecord_images(config, split, count)
    else:
        array = config.load_data().split(split)[0]
        order = np.random.RandomState(SAMPLE_SEED).permutation(len(array))[:count]
        array = array[np.sort(order)]
    if not len(array):
        raise ValueError(f'split {split!r} of {config.dataset} holds no images')
    channels = input_shape[3]
    if array.shape[3] != channels:
        raise ValueError(f'num_channels={channels}: the run\'s {config.dataset} images have '
                         f'{array.shape[3]} channel(s); accepted: --num_channels '
                         f'{array.shape[3]}')
    return _resize(array, input_shape[1], input_shape[2])
