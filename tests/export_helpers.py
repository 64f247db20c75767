"""Shared by the export tests: a few training steps, a checkpoint, eval logits."""
import os

import numpy as np
import tensorflow as tf

import slimnorm
from nets import nets_factory
from slimnorm.export import freeze
from tests.graph_utils import rel_err  # noqa: F401  (for the export tests)

tf1 = tf.compat.v1


def images(n, size, channels, seed=0):
    """Inputs of mean 2 and spread 1: the moving statistics must move far."""
    rng = np.random.RandomState(seed)
    return (rng.rand(n, size, size, channels) * 3.0 + 0.5).astype(np.float32)


def train_checkpoint(checkpoint_dir, model_name, size, channels=1, steps=5,
                     batch_size=8, num_classes=10, data_format='NHWC',
                     normalizer='batch', **network_kwargs):
    """Trains `steps` SGD steps on random inputs; returns the checkpoint prefix.

    With decay lowered to 0.5 the moving statistics are far from 0/1 after
    a few steps, and gamma and beta have moved, so a wrong fold shows.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(1)
        x = tf1.placeholder(tf.float32, [None, size, size, channels])
        labels = tf1.placeholder(tf.int64, [None])
        net_x = x if data_format == 'NHWC' else tf.transpose(x, [0, 3, 1, 2])
        kwargs = dict(network_kwargs)
        if model_name == 'small_convnet':
            kwargs.setdefault('normalizer_params', {'decay': 0.5})
        else:
            kwargs.setdefault('batch_norm_decay', 0.5)
        network_fn = nets_factory.get_network_fn(
            model_name, num_classes, is_training=True, normalizer=normalizer,
            data_format=data_format, **kwargs)
        logits, _ = network_fn(net_x)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
        train_op = slimnorm.training.create_train_op(
            loss, tf1.train.GradientDescentOptimizer(0.05))
        saver = tf1.train.Saver()
        rng = np.random.RandomState(0)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for step in range(steps):
                sess.run(train_op, {x: images(batch_size, size, channels, step),
                                    labels: rng.randint(0, num_classes, batch_size)})
            return saver.save(sess, os.path.join(checkpoint_dir, 'model.ckpt'))


def eval_logits(checkpoint, model_name, inputs, **build_kwargs):
    """Logits of the eval-mode graph with restored variables (not frozen)."""
    graph = freeze.build_inference_graph(model_name, image_size=inputs.shape[1],
                                         num_channels=inputs.shape[3], **build_kwargs)
    with graph.as_default():
        saver = tf1.train.Saver()
    with tf1.Session(graph=graph) as sess:
        saver.restore(sess, checkpoint)
        return sess.run('logits:0', {'input:0': inputs})


def op_types(graph_def):
    return {node.op for node in graph_def.node}


def nchw_runs_on_cpu():
    """Whether an NCHW conv and max-pool run here (oneDNN's CPU kernels do;
    with TF_ENABLE_ONEDNN_OPTS=0 TensorFlow has no NCHW conv on CPU)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.zeros([1, 2, 4, 4])
        y = tf.nn.max_pool2d(tf.nn.conv2d(x, tf.zeros([1, 1, 2, 2]), 1, 'SAME',
                                          data_format='NCHW'), 2, 2, 'SAME',
                             data_format='NCHW')
    try:
        with tf1.Session(graph=graph) as sess:
            sess.run(y)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return False
    return True
