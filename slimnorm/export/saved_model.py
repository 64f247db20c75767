"""A SavedModel with a `serving_default` signature from a frozen GraphDef.

The frozen graph holds its weights as constants, so the SavedModel has no
variables to restore: TF 2's `tf.saved_model.load` and `saved_model_cli`
read it as a TF 1 SavedModel with one serving MetaGraph.
"""

import os

import tensorflow as tf

from slimnorm.export import freeze

tf1 = tf.compat.v1

SIGNATURE_KEY = 'serving_default'


def write_saved_model(graph_def, export_dir, input_name=freeze.INPUT_NAME,
                      output_names=freeze.OUTPUT_NAMES):
    """Writes `graph_def` to `export_dir` as a SavedModel for serving.

    The signature's input key is `input_name`, its output keys are
    `output_names` (the node names, e.g. 'logits', 'probabilities').

    Raises:
      ValueError: `export_dir` exists and is not empty (SavedModelBuilder
        would refuse it later, less clearly), or a name is not in the graph.
    """
    if os.path.exists(export_dir) and os.listdir(export_dir):
        raise ValueError('saved_model_dir=%r exists and is not empty; give a '
                         'new directory' % (export_dir,))
    names = {node.name for node in graph_def.node}
    missing = [n for n in (input_name,) + tuple(output_names) if n not in names]
    if missing:
        raise ValueError('graph_def has no node(s) %s; it has e.g. %s'
                         % (', '.join(missing), ', '.join(sorted(names)[:5])))
    if os.path.isdir(export_dir):
        os.rmdir(export_dir)
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name='')
        inputs = {input_name: graph.get_tensor_by_name(input_name + ':0')}
        outputs = {name: graph.get_tensor_by_name(name + ':0') for name in output_names}
        signature = tf1.saved_model.signature_def_utils.predict_signature_def(
            inputs, outputs)
        builder = tf1.saved_model.Builder(export_dir)
        with tf1.Session(graph=graph) as sess:
            builder.add_meta_graph_and_variables(
                sess, [tf1.saved_model.tag_constants.SERVING],
                signature_def_map={SIGNATURE_KEY: signature},
                strip_default_attrs=True)
        builder.save()
    return export_dir
