"""Batch norms of a frozen GraphDef, found and read as per-channel affine maps.

The first half of folding (`slimnorm.export.fold` does the rewriting): which
nodes are eval-mode batch norms, what tensor each one normalizes, and the
multiplier m and shift s of y = x * m + s it computes, with every constant
operand evaluated by TensorFlow itself. Two forms are recognised:
  * FusedBatchNorm{,V2,V3} with is_training=False and constant parameters;
  * (x - C) * A + B or x * A + B with constant, per-channel A, B, C, which is
    what `tf.nn.batch_normalization` builds (batch renorm, fused=False).
"""

import collections

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

FUSED_BATCH_NORM_OPS = ('FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3')
# Ops that read only the shape of their input: folding leaves it unchanged.
SHAPE_OPS = ('Shape', 'Size', 'Rank')
# Pure ops a constant operand may be computed with (anything else, e.g. a
# random op fed a constant shape, is not treated as constant).
CONSTANT_OPS = ('Const', 'Identity', 'Reshape', 'Add', 'AddV2', 'Sub', 'Mul',
                'RealDiv', 'Rsqrt', 'Sqrt', 'Cast', 'ConcatV2', 'Fill',
                'Maximum', 'Squeeze', 'ExpandDims', 'Pack', 'Neg', 'Square')

# One batch norm as an affine map: `node` computes x * multiplier + shift on
# the tensor `x`, along the channel axis of `data_format`.
Affine = collections.namedtuple(
    'Affine', ['node', 'x', 'multiplier', 'shift', 'data_format', 'dtype'])


def node_name(tensor_name):
    return tensor_name.lstrip('^').split(':')[0]


def output_index(tensor_name):
    parts = tensor_name.split(':')
    return int(parts[1]) if len(parts) > 1 else 0


class Index:
    """Nodes by name and the names of every node's consumers."""

    def __init__(self, graph_def):
        self.graph_def = graph_def
        self.nodes = {node.name: node for node in graph_def.node}
        self.consumers = collections.defaultdict(list)
        for node in graph_def.node:
            for tensor in node.input:
                self.consumers[node_name(tensor)].append((node.name, tensor))
        self._constant = {}

    def single_consumer(self, name):
        """Whether one node reads the value of `name` (ops reading only its
        shape, as the rank-2 batch norm's reshape back does, do not count)."""
        readers = [c for c, _ in self.consumers[name]
                   if self.nodes[c].op not in SHAPE_OPS]
        return len(readers) == 1

    def is_constant(self, tensor_name):
        name = node_name(tensor_name)
        if name not in self._constant:
            node = self.nodes[name]
            data_inputs = [t for t in node.input if not t.startswith('^')]
            self._constant[name] = node.op == 'Const' or (
                node.op in CONSTANT_OPS and bool(data_inputs)
                and all(self.is_constant(t) for t in data_inputs))
        return self._constant[name]

    def unique_name(self, base):
        name, k = base, 1
        while name in self.nodes:
            name, k = '%s_%d' % (base, k), k + 1
        self.nodes[name] = None
        return name


def evaluate(graph_def, tensor_names):
    """Values of constant tensors of `graph_def`, by TensorFlow itself."""
    if not tensor_names:
        return {}
    names = sorted(set(tensor_names))
    needed = tf1.graph_util.extract_sub_graph(
        graph_def, sorted({node_name(t) for t in names}))
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(needed, name='')
    with tf1.Session(graph=graph) as sess:
        values = sess.run([t if ':' in t else t + ':0' for t in names])
    return dict(zip(names, values))


def _fused_candidate(index, node):
    """(x, [scale, offset, mean, variance] tensors) of an eval-mode fused BN."""
    if node.op not in FUSED_BATCH_NORM_OPS or node.attr['is_training'].b:
        return None
    if any(output_index(t) != 0 for _, t in index.consumers[node.name]):
        return None  # something reads the batch statistics outputs
    params = list(node.input[1:5])
    if not all(index.is_constant(t) for t in params):
        return None
    return node.input[0], params


def _affine_candidate(index, node):
    """(x, A, B, C or None) of `x * A + B` or `(x - C) * A + B`, A, B, C constant.

    The second form is `tf.nn.batch_normalization` as TF 2.21 builds it.
    """
    if node.op not in ('Add', 'AddV2') or index.is_constant(node.name):
        return None
    for mul_input, b in (node.input[:2], node.input[1::-1]):
        mul = index.nodes[node_name(mul_input)]
        if (mul.op != 'Mul' or not index.is_constant(b)
                or not index.single_consumer(mul.name)):
            continue
        for x, a in (mul.input[:2], mul.input[1::-1]):
            if not index.is_constant(a) or index.is_constant(x):
                continue
            sub = index.nodes[node_name(x)]
            if (sub.op == 'Sub' and output_index(x) == 0
                    and index.single_consumer(sub.name)
                    and index.is_constant(sub.input[1])
                    and not index.is_constant(sub.input[0])):
                return sub.input[0], a, b, sub.input[1]
            return x, a, b, None
    return None


def _channel_layout(a, b, c=None):
    """(data_format, [C] multiplier, [C] shift) of (x - c) * a + b, or None.

    a must be per channel: [C] (channels last) or [1, C, 1, 1] (NCHW);
    b and c may also be scalars.
    """
    a, b = np.asarray(a), np.asarray(b)
    c = np.zeros([], a.dtype) if c is None else np.asarray(c)
    if a.ndim <= 1 and a.size > 1:
        data_format, channels = 'NHWC', a.size
    elif a.ndim == 4 and a.shape[0] == a.shape[2] == a.shape[3] == 1:
        data_format, channels = 'NCHW', a.shape[1]
    else:
        return None
    for other in (b, c):
        if other.size not in (1, channels) or (other.size > 1 and other.shape != a.shape):
            return None
    multiplier = a.reshape(-1).astype(np.float64)

    def per_channel(v):
        return np.broadcast_to(v.reshape(-1), [channels]).astype(np.float64)
    return data_format, multiplier, per_channel(b) - per_channel(c) * multiplier


def find_batch_norms(index):
    """Every batch norm of the graph (an `Index`) as an Affine."""
    fused, affine, wanted = [], [], []
    for node in index.graph_def.node:
        candidate = _fused_candidate(index, node)
        if candidate is not None:
            fused.append((node, candidate))
            wanted.extend(candidate[1])
            continue
        candidate = _affine_candidate(index, node)
        if candidate is not None:
            affine.append((node, candidate))
            wanted.extend(t for t in candidate[1:] if t is not None)
    values = evaluate(index.graph_def, wanted)
    found = []
    for node, (x, params) in fused:
        scale, offset, mean, variance = (values[t].astype(np.float64) for t in params)
        multiplier = scale / np.sqrt(variance + node.attr['epsilon'].f)
        found.append(Affine(node.name, x, multiplier, offset - mean * multiplier,
                             node.attr['data_format'].s.decode() or 'NHWC',
                             node.attr['T'].type))
    for node, (x, a, b, c) in affine:
        layout = _channel_layout(values[a], values[b], None if c is None else values[c])
        if layout is not None:
            found.append(Affine(node.name, x, layout[1], layout[2], layout[0],
                                 node.attr['T'].type))
    return found
