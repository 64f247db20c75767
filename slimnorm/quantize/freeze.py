"""The frozen fake-quant inference graph of a quantization-aware checkpoint.

    graph_def = slimnorm.quantize.freeze.freeze_quantized_graph(
        'runs/qat', 'small_convnet', 10, image_size=8, num_channels=1)

is research/slim's `export_inference_graph --quantize` followed by
`freeze_graph`: the nets_factory network on the `input` placeholder (NHWC),
rewritten by `create_eval_graph` (batch norm folded, FakeQuant ops on the
weights and after every layer), its variables replaced by the checkpoint's
values, outputs `logits` and `probabilities`. The FakeQuant ops stay in the
frozen graph: a TFLite converter reads the int8 ranges from them.
"""

import numpy as np
import tensorflow as tf

from slimnorm import checkpoints

tf1 = tf.compat.v1

RANGE_SUFFIXES = ('/act_quant/min', '/act_quant/max')


def quantized_inference_graph(model_name, num_classes, **build_kwargs):
    """`slimnorm.export.freeze.build_inference_graph`, then `create_eval_graph`.

    Returns (graph, layers): the new graph and the layers the rewrite changed.
    """
    from slimnorm import quantize
    from slimnorm.export import freeze
    graph = freeze.build_inference_graph(model_name, num_classes, **build_kwargs)
    layers = quantize.create_eval_graph(graph)
    return graph, layers


def check_ranges(graph, checkpoint):
    """ValueError unless ``checkpoint`` holds every activation range of ``graph``."""
    stored = {name for name, _ in tf.train.list_variables(checkpoint)}
    wanted = sorted(v.op.name for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                    if v.op.name.endswith(RANGE_SUFFIXES))
    missing = [name for name in wanted if name not in stored]
    if missing:
        raise ValueError(f'checkpoint_path={checkpoint!r} has no quantization range '
                         f'{missing[0]} ({len(missing)} of {len(wanted)} missing); accepted: '
                         'a checkpoint trained with --quantize_delay (quantization-aware)')


def freeze_quantized_graph(checkpoint_path, model_name, num_classes, check_batch=2,
                           **build_kwargs):
    """The frozen fake-quant GraphDef of ``checkpoint_path`` (a prefix or a directory).

    ``build_kwargs`` go to `slimnorm.export.freeze.build_inference_graph`
    (image_size, batch_size, num_channels, normalizer, data_format, network
    arguments). Before it returns, the frozen graph is run on ``check_batch``
    random images and must give the restored graph's logits (<= 1e-5).

    Raises:
      ValueError: no checkpoint, a checkpoint without quantization ranges, a
        layer that cannot be quantized, or a frozen graph that disagrees.
    """
    from slimnorm.export import freeze
    path = checkpoints.resolve(checkpoint_path)
    graph, _ = quantized_inference_graph(model_name, num_classes, **build_kwargs)
    check_ranges(graph, path)
    images = graph.get_tensor_by_name(freeze.INPUT_NAME + ':0')
    shape = [check_batch if d is None else d for d in images.shape.as_list()]
    batch = np.random.RandomState(0).uniform(0, 1, shape).astype(np.float32)
    with graph.as_default():
        saver = tf1.train.Saver(tf1.global_variables())
    with tf1.Session(graph=graph) as sess:
        saver.restore(sess, path)
        expected = sess.run(freeze.LOGITS_NAME + ':0', {images: batch})
        graph_def = freeze.freeze_session(sess)
    got = freeze.run_graph_def(graph_def, batch, [freeze.LOGITS_NAME])[0]
    error = float(np.abs(got - expected).max())
    if not error <= 1e-5 * max(1.0, float(np.abs(expected).max())):
        raise ValueError(f'the frozen quantized graph of {path} differs from the restored '
                         f'graph by {error:.3g} on a random batch')
    return graph_def


def count_fake_quant_ops(graph_def):
    """How many FakeQuant ops a GraphDef holds (weights and activations)."""
    return sum(1 for node in graph_def.node if node.op.startswith('FakeQuantWithMinMaxVars'))
