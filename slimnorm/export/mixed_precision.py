"""A frozen inference graph with the mixed-precision rewrite applied ahead of time.

In a Session, ``slimnorm.precision.session_config`` asks TensorFlow's
grappler to rewrite the graph each time it runs. An exported GraphDef is run
by other people's Sessions, so ``export_inference_graph --mixed_precision
bfloat16`` runs that same grappler pass once, offline, and writes its result:
convolutions, matrix products, fused batch norm, pooling and activations in
bfloat16, with Cast nodes at the float32 boundaries (the ``input``
placeholder and the ``logits``/``probabilities`` outputs stay float32, and
so do the frozen weights, cast on the way in).

Before the graph is returned it is run beside the float32 graph on the same
random images and must agree (see :func:`check_agreement`).
"""
import numpy as np
import tensorflow as tf

from slimnorm import precision
from slimnorm.export import freeze

tf1 = tf.compat.v1

# grappler's names of the passes (RewriterConfig fields).
PASSES = {'bfloat16': 'auto_mixed_precision_onednn_bfloat16',
          'float16': 'auto_mixed_precision'}
# Agreement of the rewritten graph with the float32 one on random images:
# ||logits_16 - logits_32|| <= LOGITS_TOLERANCE * ||logits_32||, and each
# probability within PROBABILITY_TOLERANCE. bfloat16 rounds each layer's
# values to 8 significant bits (2**-8 relative), and a network compounds
# that over its layers: a few per cent of the logits' norm is expected, not
# tens of per cent.
LOGITS_TOLERANCE = 0.1
PROBABILITY_TOLERANCE = 0.1


def rewrite(graph_def, mixed_precision, output_names=freeze.OUTPUT_NAMES):
    """``graph_def`` after grappler's ``mixed_precision`` pass (no other pass)."""
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer
    if mixed_precision not in PASSES:
        raise ValueError(f'mixed_precision={mixed_precision!r}; accepted: '
                         f'{", ".join(PASSES)}')
    precision.register_kernels()
    with tf.Graph().as_default() as graph:
        tf1.import_graph_def(graph_def, name='')
        for name in output_names:
            # grappler keeps what this collection fetches.
            tf1.add_to_collection('train_op', graph.get_tensor_by_name(name + ':0'))
        meta_graph = tf1.train.export_meta_graph(graph=graph)
    config = config_pb2.ConfigProto()
    rewrites = config.graph_options.rewrite_options
    rewrites.optimizers[:] = [PASSES[mixed_precision]]
    rewrites.min_graph_nodes = -1
    rewrites.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return tf_optimizer.OptimizeGraph(config, meta_graph)


def sixteen_bit_ops(graph_def, dtype):
    """Names of the nodes of ``graph_def`` computing in ``dtype`` (not Casts, not Identity)."""
    enum = tf.as_dtype(dtype).as_datatype_enum
    return [node.name for node in graph_def.node
            if node.op not in ('Cast', 'Identity', 'Const') and 'T' in node.attr
            and node.attr['T'].type == enum]


def check_agreement(reference_def, rewritten_def, input_shape, seed=0):
    """Runs both graphs on the same random images; ValueError if they disagree.

    ``input_shape``: the ``input`` placeholder's shape (a None batch: 4 images).

    Returns ``{'logits_relative_error', 'max_probability_difference'}``.
    """
    images = np.random.default_rng(seed).uniform(
        -1.0, 1.0, size=[4 if d is None else d for d in input_shape]).astype(np.float32)
    want = freeze.run_graph_def(reference_def, images)
    got = freeze.run_graph_def(rewritten_def, images)
    logits_32, probs_32 = (np.asarray(v, np.float64) for v in want)
    logits_16, probs_16 = (np.asarray(v, np.float64) for v in got)
    if not (np.all(np.isfinite(logits_16)) and np.all(np.isfinite(probs_16))):
        raise ValueError('the mixed-precision graph computes inf or NaN where the float32 '
                         'graph does not; not written')
    relative = float(np.linalg.norm(logits_16 - logits_32) /
                     max(np.linalg.norm(logits_32), 1e-12))
    worst = float(np.abs(probs_16 - probs_32).max())
    if relative > LOGITS_TOLERANCE or worst > PROBABILITY_TOLERANCE:
        raise ValueError(f'the mixed-precision graph disagrees with the float32 graph '
                         f'(logits relative error {relative:.3g} > {LOGITS_TOLERANCE} or '
                         f'probability difference {worst:.3g} > {PROBABILITY_TOLERANCE}); '
                         'not written')
    return {'logits_relative_error': relative, 'max_probability_difference': worst}


def to_mixed_precision(graph_def, mixed_precision, input_shape):
    """(rewritten GraphDef, agreement dict): the checked ahead-of-time rewrite of a frozen graph."""
    rewritten = rewrite(graph_def, mixed_precision)
    dtype = tf.bfloat16 if mixed_precision == 'bfloat16' else tf.float16
    if not sixteen_bit_ops(rewritten, dtype):
        raise ValueError(f'grappler left no op in {mixed_precision} (the rewrite did not '
                         'run on this machine); not written')
    return rewritten, check_agreement(graph_def, rewritten, input_shape)
