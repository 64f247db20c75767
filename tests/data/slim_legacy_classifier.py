"""A research/slim-style train-then-evaluate script written against unedited tf-slim 1.1.0.

It stands in for research/slim's train_image_classifier.py and
eval_image_classifier.py in tests/test_tf_slim_legacy.py: the same tf-slim
APIs (slim-format TFRecords read through `slim.dataset`,
`DatasetDataProvider` and `tfexample_decoder.Image`, which decodes JPEG;
`slim.conv2d` under an arg scope whose normalizer is `slim.batch_norm`;
`slim.learning.create_train_op` and `slim.learning.train`; exponential moving
averages of the weights restored for evaluation;
`slim.evaluation.evaluate_once` with `slim.metrics`). It never imports
slimnorm and never disables eager execution: run it as
`python -m slimnorm.legacy slim_legacy_classifier.py --dataset_dir=... --train_dir=...`.

The data is generated here (two classes: dark and bright 16x16 JPEG images
with noise), so nothing downloads. The last line printed is a JSON object
with the evaluation accuracy.
"""
import json
import os

import numpy as np
import tensorflow.compat.v1 as tf
import tf_slim as slim

flags = tf.app.flags
flags.DEFINE_string("dataset_dir", None, "Where the TFRecords are written and read.")
flags.DEFINE_string("train_dir", None, "Checkpoints and summaries.")
flags.DEFINE_integer("max_number_of_steps", 60, "Training steps.")
flags.DEFINE_integer("batch_size", 16, "Batch size for training and evaluation.")
flags.DEFINE_integer("num_samples", 96, "Examples written to each split.")
flags.DEFINE_float("moving_average_decay", 0.9, "EMA decay of the weights (0: none).")
FLAGS = flags.FLAGS

SIZE = 16


def write_split(path, num_samples, seed):
    """Slim-format records: image/encoded (JPEG), image/format, image/class/label."""
    rng = np.random.RandomState(seed)
    with tf.Graph().as_default(), tf.Session() as sess:
        pixels = tf.placeholder(tf.uint8, [SIZE, SIZE, 3])
        encoded = tf.image.encode_jpeg(pixels)
        with tf.python_io.TFRecordWriter(path) as writer:
            for index in range(num_samples):
                label = index % 2
                base = 60 + 130 * label
                image = np.clip(base + rng.randint(-40, 41, (SIZE, SIZE, 3)), 0, 255)
                jpeg = sess.run(encoded, {pixels: image.astype(np.uint8)})
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                    "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }))
                writer.write(example.SerializeToString())


def get_split(split_name):
    keys_to_features = {
        "image/encoded": tf.FixedLenFeature((), tf.string, default_value=""),
        "image/format": tf.FixedLenFeature((), tf.string, default_value="jpeg"),
        "image/class/label": tf.FixedLenFeature([], tf.int64, default_value=tf.zeros([], tf.int64)),
    }
    items_to_handlers = {
        "image": slim.tfexample_decoder.Image(shape=[SIZE, SIZE, 3]),
        "label": slim.tfexample_decoder.Tensor("image/class/label"),
    }
    decoder = slim.tfexample_decoder.TFExampleDecoder(keys_to_features, items_to_handlers)
    return slim.dataset.Dataset(
        data_sources=os.path.join(FLAGS.dataset_dir, "toy_%s.tfrecord" % split_name),
        reader=tf.TFRecordReader, decoder=decoder, num_samples=FLAGS.num_samples,
        items_to_descriptions={"image": "a 16x16 color image", "label": "0 dark, 1 bright"},
        num_classes=2)


def batches(split_name, shuffle):
    provider = slim.dataset_data_provider.DatasetDataProvider(
        get_split(split_name), shuffle=shuffle, common_queue_capacity=64, common_queue_min=16)
    image, label = provider.get(["image", "label"])
    image = tf.to_float(image) / 127.5 - 1.0
    return tf.train.batch([image, label], batch_size=FLAGS.batch_size, num_threads=1, capacity=64)


def network(images, is_training):
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(1e-4)), \
            slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm), \
            slim.arg_scope([slim.batch_norm], is_training=is_training, decay=0.9, scale=True):
        net = slim.conv2d(images, 8, [3, 3], scope="conv1")
        net = slim.conv2d(net, 16, [3, 3], stride=2, scope="conv2")
        net = tf.reduce_mean(net, [1, 2])
        return slim.fully_connected(net, 2, activation_fn=None, normalizer_fn=None, scope="logits")


def train():
    with tf.Graph().as_default():
        global_step = slim.get_or_create_global_step()
        images, labels = batches("train", shuffle=True)
        logits = network(images, is_training=True)
        tf.losses.sparse_softmax_cross_entropy(labels, logits)
        total_loss = tf.losses.get_total_loss()
        if FLAGS.moving_average_decay:
            averages = tf.train.ExponentialMovingAverage(FLAGS.moving_average_decay, global_step)
            tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, averages.apply(slim.get_model_variables()))
        optimizer = tf.train.MomentumOptimizer(0.1, 0.9)
        train_op = slim.learning.create_train_op(total_loss, optimizer)
        slim.learning.train(train_op, logdir=FLAGS.train_dir,
                            number_of_steps=FLAGS.max_number_of_steps,
                            log_every_n_steps=20, save_summaries_secs=600, save_interval_secs=600)


def evaluate():
    with tf.Graph().as_default():
        global_step = slim.get_or_create_global_step()
        images, labels = batches("validation", shuffle=False)
        predictions = tf.argmax(network(images, is_training=False), 1)
        if FLAGS.moving_average_decay:
            averages = tf.train.ExponentialMovingAverage(FLAGS.moving_average_decay, global_step)
            variables_to_restore = averages.variables_to_restore(slim.get_model_variables())
            variables_to_restore[global_step.op.name] = global_step
        else:
            variables_to_restore = slim.get_variables_to_restore()
        names_to_values, names_to_updates = slim.metrics.aggregate_metric_map({
            "accuracy": slim.metrics.streaming_accuracy(predictions, labels)})
        values = slim.evaluation.evaluate_once(
            "", tf.train.latest_checkpoint(FLAGS.train_dir), os.path.join(FLAGS.train_dir, "eval"),
            num_evals=FLAGS.num_samples // FLAGS.batch_size,
            eval_op=list(names_to_updates.values()),
            final_op=names_to_values, variables_to_restore=variables_to_restore)
    return {name: float(value) for name, value in values.items()}


def main(_):
    os.makedirs(FLAGS.dataset_dir, exist_ok=True)
    write_split(os.path.join(FLAGS.dataset_dir, "toy_train.tfrecord"), FLAGS.num_samples, 1)
    write_split(os.path.join(FLAGS.dataset_dir, "toy_validation.tfrecord"), FLAGS.num_samples, 2)
    train()
    print(json.dumps(evaluate()))


if __name__ == "__main__":
    tf.app.run()
