"""A research/slim-style training script written for TensorFlow 1's API.

It is what research/slim's older train_image_classifier.py looks like:
`import tensorflow as tf` and then `tf.app.flags`, `tf.logging`, `tf.gfile`,
`tf.train.slice_input_producer` / `tf.train.batch` queues, `tf.contrib.slim`,
`from tensorflow.contrib import quantize` and `tf.contrib.training.HParams`.
It never imports slimnorm: run it unedited as
`python -m slimnorm.legacy --tf1_api slim_tf1_api_script.py --train_dir=...`.
The last line printed is a JSON object.
"""
import json

import numpy as np
import tensorflow as tf
from tensorflow.contrib import quantize, slim

flags = tf.app.flags
flags.DEFINE_string('train_dir', None, 'Checkpoints and summaries.')
flags.DEFINE_integer('max_number_of_steps', 30, 'Training steps.')
flags.DEFINE_integer('quantize_delay', -1, 'Quantize after this step (-1: no quantization).')
flags.DEFINE_string('hparams', '', 'Overrides, e.g. "num_filters=4,learning_rate=0.2".')
FLAGS = flags.FLAGS


def default_hparams():
    return tf.contrib.training.HParams(num_filters=8, learning_rate=0.1, batch_size=16,
                                       data_format='NHWC')


def toy_data(num_samples=128, seed=0):
    """Dark (0) and bright (1) 8x8 images with noise."""
    rng = np.random.RandomState(seed)
    labels = np.arange(num_samples) % 2
    images = 0.25 + 0.5 * labels[:, None, None, None] + rng.uniform(-0.2, 0.2, (num_samples, 8, 8, 1))
    return images.astype(np.float32), labels.astype(np.int64)


def network(images, params):
    with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                        normalizer_params={'is_training': True, 'decay': 0.9}):
        net = slim.conv2d(images, params.num_filters, [3, 3], scope='conv1')
        net = tf.reduce_mean(net, [1, 2])
        return slim.fully_connected(net, 2, activation_fn=None, scope='logits')


def main(_):
    tf.logging.set_verbosity(tf.logging.INFO)
    params = default_hparams().parse(FLAGS.hparams)
    if not tf.gfile.IsDirectory(FLAGS.train_dir):
        tf.gfile.MakeDirs(FLAGS.train_dir)
    with tf.Graph().as_default():
        images, labels = toy_data()
        image, label = tf.train.slice_input_producer([images, labels], shuffle=True, seed=1)
        image_batch, label_batch = tf.train.batch([image, label], batch_size=params.batch_size)
        logits = network(image_batch, params)
        loss = tf.losses.sparse_softmax_cross_entropy(label_batch, logits)
        if FLAGS.quantize_delay >= 0:
            quantize.create_training_graph(quant_delay=FLAGS.quantize_delay)
        optimizer = tf.train.GradientDescentOptimizer(params.learning_rate)
        train_op = slim.learning.create_train_op(loss, optimizer)
        final_loss = slim.learning.train(train_op, FLAGS.train_dir,
                                         number_of_steps=FLAGS.max_number_of_steps,
                                         log_every_n_steps=10, save_summaries_secs=600,
                                         save_interval_secs=600)
    tf.logging.info('final loss %f', final_loss)
    print(json.dumps({'loss': float(final_loss), 'hparams': params.values(),
                      'contrib_slim_is_tf_slim': tf.contrib.slim is slim,
                      'has_placeholder': hasattr(tf, 'placeholder')}))


if __name__ == '__main__':
    tf.app.run()
