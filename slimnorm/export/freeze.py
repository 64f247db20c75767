"""Inference graphs of the nets_factory networks, frozen as research/slim did.

research/slim's `export_inference_graph.py` builds the network on a
placeholder named `input` ([batch, height, width, channels], batch may be
None) and writes its GraphDef; `freeze_graph` then turns the variables into
constants read from a checkpoint. This module does both in one step and adds
two identity nodes, `logits` and `probabilities`, so that a server does not
need to know the network's internal end-point names.

The input is always NHWC, as slim's; a network built with
data_format='NCHW' receives it through one transpose inside the graph.
"""

import os

import tensorflow as tf

from slimnorm import checkpoints
from slimnorm.export.names import (  # noqa: F401  (re-exported)
    DATASET_CLASSES,
    INPUT_NAME,
    LOGITS_NAME,
    OUTPUT_NAMES,
    PROBABILITIES_NAME,
    num_classes_for,
)

tf1 = tf.compat.v1


def build_network(images, model_name, num_classes, is_training=False,
                  normalizer='batch', data_format='NHWC', **network_kwargs):
    """The nets_factory network on NHWC `images`; returns (logits, probabilities).

    Both outputs are identity nodes named `logits` and `probabilities` in
    the root name scope (the logits are [batch, num_classes]).
    """
    from nets import nets_factory
    network_fn = nets_factory.get_network_fn(
        model_name, num_classes, is_training=is_training,
        normalizer=normalizer, data_format=data_format, **network_kwargs)
    if data_format == 'NCHW':
        images = tf.transpose(images, [0, 3, 1, 2], name='to_nchw')
    logits, end_points = network_fn(images)
    probabilities = end_points.get('Predictions')
    if probabilities is None:
        probabilities = tf.nn.softmax(logits)
    return (tf.identity(logits, name=LOGITS_NAME),
            tf.identity(probabilities, name=PROBABILITIES_NAME))


def build_inference_graph(model_name, num_classes, image_size=None,
                          batch_size=None, num_channels=3, is_training=False,
                          normalizer='batch', data_format='NHWC',
                          **network_kwargs):
    """A new tf.Graph holding the `input` placeholder and the network.

    Args:
      model_name: a nets_factory name ('small_convnet', 'inception_v2').
      num_classes: number of logits (> 0).
      image_size: height and width; None: the network's default size.
      batch_size: static batch size, or None for any.
      num_channels: channels of the input images (slim: 3).
      is_training: build batch norm and dropout in training mode (slim's
        flag; an inference graph normally keeps False).
      normalizer, data_format, **network_kwargs: as for nets_factory.

    Returns:
      The graph; its input is `input:0`, its outputs `logits:0` and
      `probabilities:0`.
    """
    from nets import nets_factory
    if model_name not in nets_factory.NETWORKS:
        raise ValueError('model_name=%r is not a known network; known: %s'
                         % (model_name, ', '.join(sorted(nets_factory.NETWORKS))))
    if image_size is None:
        image_size = nets_factory.NETWORKS[model_name][0].default_image_size
    graph = tf.Graph()
    with graph.as_default():
        # Seeded initializers: an unfrozen export computes the same before
        # and after it is written (slimnorm.export.checked_export checks it).
        tf1.set_random_seed(0)
        images = tf1.placeholder(
            tf.float32, [batch_size, image_size, image_size, num_channels],
            name=INPUT_NAME)
        build_network(images, model_name, num_classes, is_training=is_training,
                      normalizer=normalizer, data_format=data_format,
                      **network_kwargs)
    return graph


def freeze_session(sess, output_names=OUTPUT_NAMES):
    """A frozen copy of `sess.graph`: variables read into constants.

    Only what `output_names` need is kept. `sess.graph` is not changed.
    """
    graph_def = sess.graph.as_graph_def()
    frozen = tf1.graph_util.convert_variables_to_constants(
        sess, graph_def, list(output_names))
    return tf1.graph_util.extract_sub_graph(frozen, list(output_names))


def restore_and_freeze(graph, checkpoint_path, output_names=OUTPUT_NAMES):
    """Restores every global variable of `graph` from the checkpoint; freezes.

    Returns:
      The frozen GraphDef.

    Raises:
      ValueError: no checkpoint at `checkpoint_path` (slimnorm.checkpoints).
    """
    path = checkpoints.resolve(checkpoint_path)
    with graph.as_default():
        saver = tf1.train.Saver(tf1.global_variables())
    with tf1.Session(graph=graph) as sess:
        saver.restore(sess, path)
        return freeze_session(sess, output_names)


def write_graph_def(graph_def, output_file):
    """Writes a binary GraphDef (as slim's export did); creates the directory."""
    directory = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(directory, exist_ok=True)
    with open(output_file, 'wb') as f:
        f.write(graph_def.SerializeToString())


def read_graph_def(path):
    """Reads a binary GraphDef file."""
    graph_def = tf1.GraphDef()
    with open(path, 'rb') as f:
        graph_def.ParseFromString(f.read())
    return graph_def


def run_graph_def(graph_def, images, output_names=OUTPUT_NAMES,
                  input_name=INPUT_NAME):
    """Runs a (frozen) GraphDef on `images`; returns the outputs as a list."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name='')
    with tf1.Session(graph=graph) as sess:
        return sess.run([name + ':0' for name in output_names],
                        {input_name + ':0': images})
