"""ONNX models of a frozen inference graph, through tf2onnx, run by ONNX Runtime.

- float: `tf2onnx.convert.from_graph_def` at the given opset (default
  `formats.DEFAULT_ONNX_OPSET`); the input keeps TensorFlow's name
  `input:0` (NHWC, any batch), the outputs `logits:0` and `probabilities:0`.
  A graph with FakeQuant ops (quantization-aware) becomes
  QuantizeLinear/DequantizeLinear pairs holding its ranges.
- int8, post-training (`representative` images): the float model quantized
  by ONNX Runtime's `quantize_static` (QDQ format, int8 weights per output
  channel, int8 activations calibrated on the images by min/max).

The `onnx` extra (tf2onnx, onnxruntime) provides both.
"""
import os
import tempfile

import numpy as np

from slimnorm.export import checked_write, formats, freeze


def convert(graph_def, opset=formats.DEFAULT_ONNX_OPSET, input_name=freeze.INPUT_NAME,
            output_names=freeze.OUTPUT_NAMES):
    """The serialized ONNX model (bytes) of a frozen GraphDef."""
    formats.require('onnx')
    import tf2onnx
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=[input_name + ':0'],
        output_names=[name + ':0' for name in output_names], opset=opset)
    return model.SerializeToString()


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over numpy images."""

    def __init__(self, input_name, images, batch_size=8):
        self._batches = iter([{input_name: images[i:i + batch_size]}
                              for i in range(0, len(images), batch_size)])

    def get_next(self):
        return next(self._batches, None)


def quantize_int8(content, representative, input_name=freeze.INPUT_NAME):
    """ONNX Runtime's static int8 quantization (QDQ) of a float ONNX model (bytes)."""
    formats.require('onnx')
    from onnxruntime import quantization
    with tempfile.TemporaryDirectory() as directory:
        source = os.path.join(directory, 'float.onnx')
        target = os.path.join(directory, 'int8.onnx')
        with open(source, 'wb') as f:
            f.write(content)
        quantization.quantize_static(
            source, target, _Calibration(input_name + ':0', representative.astype(np.float32)),
            quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8)
        with open(target, 'rb') as f:
            return f.read()


def session(model, num_threads=None):
    """An onnxruntime InferenceSession (CPU) of a model path or bytes."""
    formats.require('onnx')
    import onnxruntime
    options = onnxruntime.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=['CPUExecutionProvider'])


def invoke(sess, images):
    """Outputs of a session on `images`: dict name (without ':0') -> array."""
    names = [out.name for out in sess.get_outputs()]
    values = sess.run(names, {sess.get_inputs()[0].name: images.astype(np.float32)})
    return {name.split(':')[0]: value for name, value in zip(names, values)}


def run(model, images, num_threads=None):
    """Outputs of an ONNX model (path or bytes) on `images` (in batches of a static batch)."""
    sess = session(model, num_threads)
    batch = sess.get_inputs()[0].shape[0]
    return checked_write.in_batches(lambda chunk: invoke(sess, chunk), images,
                                    batch if isinstance(batch, int) else None)


def export_onnx(graph_def, path, images, opset=formats.DEFAULT_ONNX_OPSET, int8=False,
                representative=None, input_name=freeze.INPUT_NAME,
                output_names=freeze.OUTPUT_NAMES):
    """Converts, checks against TensorFlow on `images`, then writes `path`.

    Float models must match TensorFlow within `checked_write.FLOAT_TOLERANCE`;
    int8 models (post-training, or the QDQ model of a quantization-aware
    graph, whose rounding differs from TensorFlow's fake quantization by up
    to one step) must agree on the top-1 class for
    `checked_write.MIN_TOP1_AGREEMENT` of the images.

    Returns:
      (the check's summary, the model's size in bytes).

    Raises:
      checked_write.ExportCheckError: the check failed (nothing written).
      ValueError: tf2onnx or the quantizer refused the graph (one line).
    """
    formats.require('onnx')
    try:
        content = convert(graph_def, opset, input_name, output_names)
        if int8:
            if representative is None or not len(representative):
                raise ValueError('representative images are needed for an int8 model')
            content = quantize_int8(content, representative, input_name)
    except Exception as err:  # tf2onnx raises its own and TensorFlow's errors
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else repr(err)
        raise ValueError(f'the ONNX conversion failed: {first}') from err
    reference = checked_write.tensorflow_reference(graph_def, images, output_names,
                                                   input_name)
    quantized = int8 or formats.has_fake_quant(graph_def)
    check = checked_write.check_top1 if quantized else checked_write.check_close
    summary = checked_write.write_checked(path, content, run, images, reference, check)
    return summary, len(content)
