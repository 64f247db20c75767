"""Batch norm folded into the layer before it, on a frozen GraphDef.

In eval mode a batch norm is a per-channel affine map
    y = x * m + s,   m = gamma / sqrt(moving_variance + epsilon),
                     s = beta - moving_mean * m,
and when x is the output of a linear layer (conv2d, the pointwise conv of a
separable conv, a depthwise conv, a fully-connected MatMul) the map can go
into that layer: its weights are scaled by m along the output channels and
s becomes (or is added to) its bias. The network then computes the same
function with one op less per layer. TF 1's `fold_batch_norms` graph
transform did this; it is not in the TF 2 wheel, and the Python helper that
remains (`optimize_for_inference_lib`) changes the GraphDef it is given.

What is recognised, in a GraphDef whose variables are constants (see
`slimnorm.export.freeze`):
  * FusedBatchNorm{,V2,V3} with is_training=False (slimnorm's fused path,
    rank 4 NHWC/NCHW, and rank 2 through its [N, 1, 1, C] reshape);
  * (x - C) * A + B or x * A + B with constant, per-channel A, B, C (the
    moments path, e.g. batch renorm or fused=False, through
    `tf.nn.batch_normalization`).
Between the layer and the batch norm there may be a BiasAdd, an Identity,
or the rank-2 reshape; each must feed nothing else. A batch norm with no
such layer before it becomes one Mul and one AddV2 with constant operands.

The caller's GraphDef is never changed: everything works on a copy.
"""

import collections

import numpy as np
import tensorflow as tf

from slimnorm.export.fold_patterns import (
    Index,
    evaluate,
    find_batch_norms,
    node_name,
    output_index,
)
from slimnorm.export.names import short_list

tf1 = tf.compat.v1

LINEAR_OPS = ('Conv2D', 'DepthwiseConv2dNative', 'MatMul')
# Ops allowed between a linear layer and its batch norm.
PASS_THROUGH_OPS = ('BiasAdd', 'Identity', 'Reshape')
VARIABLE_OPS = ('VarHandleOp', 'VariableV2', 'Variable')

FoldResult = collections.namedtuple('FoldResult', ['graph_def', 'folded', 'affine'])
FoldResult.__doc__ = """Output of `fold_batch_norms`.

graph_def: the new GraphDef; folded: {batch norm node: layer node it went
into}; affine: batch norm nodes turned into a multiply-add."""


def _data_format(node):
    return node.attr['data_format'].s.decode() or 'NHWC'


def _linear_layer(index, bn):
    """(layer node, [pass-through nodes]) that `bn` can fold into, or None."""
    chain, tensor = [], bn.x
    while True:
        name = node_name(tensor)
        node = index.nodes[name]
        if output_index(tensor) != 0 or not index.single_consumer(name):
            return None
        if node.op in LINEAR_OPS:
            break
        if node.op not in PASS_THROUGH_OPS:
            return None
        if node.op == 'BiasAdd' and _data_format(node) != bn.data_format:
            return None
        if node.op == 'Reshape' and not _keeps_last_axis(index, node, bn):
            return None
        chain.append(node)
        tensor = node.input[0]
    if not index.is_constant(node.input[1]) or node.attr['T'].type != bn.dtype:
        return None
    if node.op == 'MatMul':
        if bn.data_format != 'NHWC' or node.attr['transpose_a'].b:
            return None
    elif _data_format(node) != bn.data_format:
        return None
    if any(n.op == 'Reshape' for n in chain) and node.op != 'MatMul':
        return None
    return node, chain


def _keeps_last_axis(index, reshape, bn):
    """A reshape [N, C] -> [-1, 1, 1, C]: channel c stays channel c."""
    if bn.data_format != 'NHWC' or not index.is_constant(reshape.input[1]):
        return False
    shape_node = index.nodes[node_name(reshape.input[1])]
    if shape_node.op != 'Const':
        return False
    shape = tf.make_ndarray(shape_node.attr['value'].tensor).reshape(-1)
    return len(shape) >= 1 and shape[-1] == bn.multiplier.size


def _scaled_weights(layer, weights, multiplier):
    """The layer's weights with output channel c multiplied by multiplier[c]."""
    if layer.op == 'Conv2D':
        out = weights.shape[3]
        scaled = None if out != multiplier.size else weights * multiplier
    elif layer.op == 'DepthwiseConv2dNative':
        channels, per_channel = weights.shape[2], weights.shape[3]
        scaled = (None if channels * per_channel != multiplier.size else
                  weights * multiplier.reshape(channels, per_channel))
    else:  # MatMul: [in, out], or [out, in] with transpose_b
        if layer.attr['transpose_b'].b:
            scaled = (None if weights.shape[0] != multiplier.size
                      else weights * multiplier[:, None])
        else:
            scaled = (None if weights.shape[1] != multiplier.size
                      else weights * multiplier)
    return scaled


class _Rewriter:
    """Builds the folded GraphDef: replaced nodes by name, new nodes."""

    def __init__(self, index):
        self.index = index
        self.replaced = {}
        self.added = []

    def const(self, base, value, dtype):
        name = self.index.unique_name(base)
        node = tf1.NodeDef(name=name, op='Const')
        node.attr['dtype'].type = dtype
        node.attr['value'].tensor.CopyFrom(tf.make_tensor_proto(
            np.asarray(value, tf.as_dtype(dtype).as_numpy_dtype)))
        self.added.append(node)
        return name

    def node(self, name, op, inputs, dtype, data_format=None):
        node = tf1.NodeDef(name=name, op=op, input=inputs)
        node.attr['T'].type = dtype
        if data_format is not None:
            node.attr['data_format'].s = data_format.encode()
        return node

    def replace(self, node):
        self.replaced[node.name] = node

    def graph_def(self, original):
        out = tf1.GraphDef()
        out.versions.CopyFrom(original.versions)
        out.library.CopyFrom(original.library)
        for node in original.node:
            out.node.add().CopyFrom(self.replaced.get(node.name, node))
        for node in self.added:
            out.node.add().CopyFrom(node)
        return out


def _fold_into_layer(rewriter, bn, layer, chain, values):
    """Rewrites the layer's weights, any bias on the way, and the BN node."""
    dtype = bn.dtype
    scaled = _scaled_weights(layer, values[layer.input[1]], bn.multiplier)
    if scaled is None:
        return False
    new_layer = tf1.NodeDef()
    new_layer.CopyFrom(layer)
    new_layer.input[1] = rewriter.const(layer.name + '/folded_weights', scaled, dtype)
    rewriter.replace(new_layer)
    controls = [t for t in rewriter.index.nodes[bn.node].input if t.startswith('^')]
    biases = [n for n in chain if n.op == 'BiasAdd']
    for k, bias_add in enumerate(biases):
        bias = values[bias_add.input[1]].astype(np.float64) * bn.multiplier
        if k == len(biases) - 1:
            bias = bias + bn.shift
        new_bias_add = tf1.NodeDef()
        new_bias_add.CopyFrom(bias_add)
        new_bias_add.input[1] = rewriter.const(bias_add.name + '/folded_bias', bias, dtype)
        rewriter.replace(new_bias_add)
    if biases:
        rewriter.replace(rewriter.node(bn.node, 'Identity', [bn.x] + controls, dtype))
    else:
        shift = rewriter.const(bn.node + '/folded_bias', bn.shift, dtype)
        rewriter.replace(rewriter.node(bn.node, 'BiasAdd', [bn.x, shift] + controls,
                                       dtype, bn.data_format))
    return True


def _multiply_add(rewriter, bn):
    """The BN node becomes x * multiplier + shift (two ops, constant operands)."""
    shape = [-1] if bn.data_format == 'NHWC' else [-1, 1, 1]
    controls = [t for t in rewriter.index.nodes[bn.node].input if t.startswith('^')]
    multiplier = rewriter.const(bn.node + '/multiplier', bn.multiplier.reshape(shape), bn.dtype)
    shift = rewriter.const(bn.node + '/shift', bn.shift.reshape(shape), bn.dtype)
    mul = rewriter.index.unique_name(bn.node + '/mul')
    rewriter.added.append(rewriter.node(mul, 'Mul', [bn.x, multiplier], bn.dtype))
    rewriter.replace(rewriter.node(bn.node, 'AddV2', [mul, shift] + controls, bn.dtype))


def _sinks(graph_def):
    consumed = {node_name(t) for node in graph_def.node for t in node.input}
    return [node.name for node in graph_def.node if node.name not in consumed]


def fold_batch_norms(graph_def, output_names=None):
    """Folds every eval-mode batch norm of a frozen GraphDef; returns a FoldResult.

    Args:
      graph_def: a GraphDef whose weights and batch-norm parameters are
        constants (e.g. from `freeze.freeze_session`). It is not modified.
      output_names: the nodes to keep (default: the nodes nothing consumes);
        nodes only the removed batch norms used are dropped.

    Returns:
      FoldResult(graph_def, folded={bn: layer}, affine=[bn, ...]).
    """
    if not isinstance(graph_def, tf1.GraphDef):
        raise TypeError('graph_def must be a tf.compat.v1.GraphDef, got %r'
                        % (type(graph_def).__name__,))
    variables = sorted(n.name for n in graph_def.node if n.op in VARIABLE_OPS)
    if variables:
        raise ValueError(
            'graph_def holds variables (%s): fold_batch_norms needs a frozen '
            'GraphDef; freeze it first (slimnorm.export.freeze.freeze_session, '
            'or fold_session on a restored session)' % short_list(variables))
    original = tf1.GraphDef()
    original.CopyFrom(graph_def)
    output_names = list(output_names or _sinks(original))
    index = Index(original)
    batch_norms = find_batch_norms(index)
    targets = {}
    for bn in batch_norms:
        found = _linear_layer(index, bn)
        if found is not None:
            targets[bn.node] = found
    weights = [t for layer, chain in targets.values()
               for t in [layer.input[1]] + [n.input[1] for n in chain if n.op == 'BiasAdd']]
    values = evaluate(original, weights)
    rewriter = _Rewriter(index)
    folded, affine = {}, []
    for bn in batch_norms:
        if bn.node in targets and _fold_into_layer(rewriter, bn, *targets[bn.node], values):
            folded[bn.node] = targets[bn.node][0].name
        else:
            _multiply_add(rewriter, bn)
            affine.append(bn.node)
    result = tf1.graph_util.extract_sub_graph(rewriter.graph_def(original), output_names)
    return FoldResult(result, folded, affine)


def fold_session(sess, output_names):
    """Freezes the graph of a session holding restored variables, then folds.

    `sess.graph` is not changed. Returns a FoldResult.
    """
    from slimnorm.export import freeze
    frozen = freeze.freeze_session(sess, output_names)
    return fold_batch_norms(frozen, output_names)
