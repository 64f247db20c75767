"""Predictions of an Inception V2 checkpoint, as slim's evaluation made them.

    result = predict('/ckpts/inception_v2.ckpt', images)     # uint8 batch
    result.classes        # [batch] argmax; class 0 is 'background' in
                          # slim's 1001-class ImageNet checkpoints
    result.probabilities  # [batch, 1001]

The graph is the one `eval_image_classifier.py` built: Inception
preprocessing for evaluation (central crop, bilinear resize, scale to
[-1, 1]), the network with `is_training=False` (batch norm from its moving
statistics, no dropout), and a Saver over slim's checkpoint names, or over
the `ExponentialMovingAverage` shadow variables with `moving_average_decay`.
"""

import collections

import numpy as np
import tensorflow as tf
import tf_slim as slim

import slimnorm.training
from nets import inception_v2
from slimnorm import checkpoints, checks
from slimnorm.data import preprocessing

tf1 = tf.compat.v1

Predictions = collections.namedtuple('Predictions',
                                     ['classes', 'probabilities', 'logits'])


def preprocess_for_eval(images, height=224, width=224,
                        central_fraction=0.875):
    """slim's `inception_preprocessing.preprocess_for_eval`, on a batch.

    The implementation is `slimnorm.data.preprocessing.preprocess_for_eval`
    (uint8 -> [0, 1], central crop, TF1 bilinear resize, scale to [-1, 1]);
    this entry point only insists on a rank-4 batch.

    Raises:
      ValueError: images not rank 4, or central_fraction outside (0, 1].
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4:
        raise ValueError('images must be a rank-4 batch [batch, height, width, '
                         'channels], got shape %s.' % (images.shape,))
    return preprocessing.preprocess_for_eval(images, height, width,
                                             central_fraction)


def predict(checkpoint_path, images, num_classes=1001,
            moving_average_decay=None, image_size=224, central_fraction=0.875,
            batch_size=32, arg_scope_kwargs=None, **network_kwargs):
    """Restores an Inception V2 checkpoint and classifies `images`.

    Args:
      checkpoint_path: a checkpoint prefix, or a directory (its latest).
      images: [batch, height, width, 3] array, uint8 or floats in [0, 1];
        all of one size, any size (they are cropped and resized).
      num_classes: classes of the checkpoint's logits layer.
      moving_average_decay: if set, restore each model variable from its
        `ExponentialMovingAverage` shadow, as slim's eval with
        --moving_average_decay (shadow names do not depend on the decay:
        any value in (0, 1) reads the same shadows).
      image_size: the network's input size.
      central_fraction: the crop of the eval preprocessing.
      batch_size: images per session run.
      arg_scope_kwargs: arguments of `inception_v2_arg_scope` (e.g. the
        normalizer of a non-BN checkpoint).
      **network_kwargs: further arguments of `inception_v2.inception_v2`
        (e.g. depth_multiplier).

    Returns:
      Predictions(classes [batch] int64, probabilities [batch, num_classes],
      logits [batch, num_classes]).

    Raises:
      ValueError: no checkpoint at checkpoint_path, images not a batch of
        one size, or bad preprocessing arguments.
    """
    checkpoint = checkpoints.resolve(checkpoint_path)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError('images must be a non-empty [batch, height, width, '
                         'channels] array, got shape %s.' % (images.shape,))
    checks.integer(batch_size, 'batch_size', minimum=1)
    with tf.Graph().as_default() as graph:
        inputs = tf1.placeholder(tf.as_dtype(images.dtype),
                                 (None,) + images.shape[1:])
        processed = preprocess_for_eval(inputs, image_size, image_size,
                                        central_fraction)
        with slim.arg_scope(inception_v2.inception_v2_arg_scope(
                **(arg_scope_kwargs or {}))):
            logits, end_points = inception_v2.inception_v2(
                processed, num_classes=num_classes, is_training=False,
                **network_kwargs)
        saver = tf1.train.Saver(slimnorm.training.variables_to_restore(
            moving_average_decay=moving_average_decay))
        outputs = []
        with tf1.Session(graph=graph) as sess:
            saver.restore(sess, checkpoint)
            for start in range(0, len(images), batch_size):
                outputs.append(sess.run(
                    [logits, end_points['Predictions']],
                    {inputs: images[start:start + batch_size]}))
    logits, probabilities = (np.concatenate(parts) for parts in zip(*outputs))
    return Predictions(classes=np.argmax(logits, axis=-1),
                       probabilities=probabilities, logits=logits)
