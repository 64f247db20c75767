"""Where a serialized model's bytes go: weights, vectors, quantization parameters, the rest.

A float32 model stores each weight in 4 bytes and an int8 model in 1, so the
weights alone shrink by 4x; the file shrinks by less, because an int8 model
quantized per output channel also stores, for each channel, an int32 bias and
the scale and zero point of the weights and of the bias (TFLite keeps every
zero point as an int64). `composition` splits a model's bytes into:

- weights: constant tensors of rank >= 2 (convolution and fully connected kernels);
- vectors: constant tensors of rank <= 1 that are not quantization parameters
  (biases, batch-norm parameters, shapes);
- quantization: scales and zero points (TFLite: each tensor's quantization
  metadata, 4 bytes a scale and 8 a zero point; ONNX: the scale and zero-point
  inputs of QuantizeLinear / DequantizeLinear);
- rest: everything else in the file (operators, names, framing).

A buffer shared by several tensors is counted once.
"""
import numpy as np

PARTS = ('weights', 'vectors', 'quantization', 'rest')
_TFLITE_SCALE_BYTES = 4
_TFLITE_ZERO_POINT_BYTES = 8


def _result(total, weights, vectors, quantization):
    return {'file': total, 'weights': weights, 'vectors': vectors,
            'quantization': quantization, 'rest': total - weights - vectors - quantization}


def _graph_def(data):
    import tensorflow as tf
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    weights = vectors = 0
    for node in graph_def.node:
        if node.op != 'Const':
            continue
        value = tf.make_ndarray(node.attr['value'].tensor)
        if value.dtype == object:  # strings: not parameters
            continue
        if value.ndim >= 2:
            weights += value.nbytes
        else:
            vectors += value.nbytes
    return _result(len(data), weights, vectors, 0)


def _tflite(data):
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    weights = vectors = quantization = 0
    seen = set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            params = tensor.quantization
            if params is not None and params.scale is not None:
                quantization += _TFLITE_SCALE_BYTES * len(params.scale)
            if params is not None and params.zeroPoint is not None:
                quantization += _TFLITE_ZERO_POINT_BYTES * len(params.zeroPoint)
            buffer = model.buffers[tensor.buffer].data
            if buffer is None or tensor.buffer in seen:
                continue
            seen.add(tensor.buffer)
            rank = 0 if tensor.shape is None else len(tensor.shape)
            if rank >= 2:
                weights += len(buffer)
            else:
                vectors += len(buffer)
    return _result(len(data), weights, vectors, quantization)


def _onnx(data):
    import onnx
    from onnx import numpy_helper
    model = onnx.load_from_string(data)
    params = set()
    for node in model.graph.node:
        if node.op_type in ('QuantizeLinear', 'DequantizeLinear'):
            params.update(node.input[1:])
    weights = vectors = quantization = 0
    for initializer in model.graph.initializer:
        value = numpy_helper.to_array(initializer)
        if initializer.name in params:
            quantization += value.nbytes
        elif np.ndim(value) >= 2:
            weights += value.nbytes
        else:
            vectors += value.nbytes
    return _result(len(data), weights, vectors, quantization)


def composition(fmt, data):
    """{'file', 'weights', 'vectors', 'quantization', 'rest'} in bytes.

    Args:
      fmt: 'tf_*' (a frozen GraphDef), 'tflite_*' or 'onnx_*'.
      data: the serialized model.
    """
    if fmt.startswith('tflite'):
        return _tflite(data)
    if fmt.startswith('onnx'):
        return _onnx(data)
    if fmt.startswith('tf'):
        return _graph_def(data)
    raise ValueError('fmt=%r: accepted: tf_*, tflite_*, onnx_*' % (fmt,))


def table(sizes, reference='tf_float32'):
    """Markdown table of {format: composition}: MB of each part, and how much smaller."""
    base = sizes[reference]
    lines = ['| format | file MB | weights MB | vectors MB | quantization MB | rest MB | '
             'file smaller by | weights smaller by |', '|---|---|---|---|---|---|---|---|']
    for fmt, parts in sizes.items():
        lines.append('| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.2fx | %.2fx |' % (
            (fmt,) + tuple(parts[key] / 1e6 for key in ('file',) + PARTS)
            + (base['file'] / parts['file'], base['weights'] / max(parts['weights'], 1))))
    return '\n'.join(lines)
