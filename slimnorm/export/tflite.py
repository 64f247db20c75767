"""TFLite models of a frozen inference graph: float, and full-integer int8.

Three conversions of `tf.compat.v1.lite.TFLiteConverter.from_frozen_graph`:

- float (`int8=False`): float32 weights and activations, the same
  operations as the graph (batch norm folded by the converter).
- int8, post-training (`representative` images): full-integer quantization
  calibrated on those images (weights per output channel, activations per
  tensor), int8 input and outputs (`TFLITE_BUILTINS_INT8` only: a model
  that cannot be fully quantized fails to convert rather than keeping
  float operations).
- int8 from a quantization-aware graph: a graph holding FakeQuant ops
  (`slimnorm.quantize`'s eval graph, frozen; research/slim's
  `contrib.quantize.create_eval_graph`) converts through the converter's
  quantized path (`inference_type=int8`), which takes every range from the
  fake-quant ops; only the input's range is given, from the images.

int8 models take and give int8 tensors with a scale and zero point;
`run` quantizes the float images and dequantizes the outputs, so callers
see float arrays either way. The interpreter is ai-edge-litert's (the
`tflite` extra); XNNPACK runs the float and int8 kernels on CPU.
"""
import numpy as np
import tensorflow as tf

from slimnorm.export import checked_write, formats, freeze
from slimnorm.export.formats import has_fake_quant

tf1 = tf.compat.v1

def input_stats(images):
    """(mean, std) of TFLite's quantized_input_stats for the range of `images`.

    real = (q - mean) / std with q in [-128, 127]; the range always holds 0,
    as TFLite's quantizer makes it.
    """
    low = min(0.0, float(np.min(images)))
    high = max(float(np.max(images)), low + 1e-6)
    std = 255.0 / (high - low)
    return -128.0 - low * std, std


def _converter(graph_file, input_name, output_names):
    # No input_shapes: the converter keeps the placeholder's shape, a batch of
    # None included (shape_signature -1), so `prepare` can resize the batch;
    # a batch fixed at 1 here would leave reshapes XNNPACK cannot resize.
    return tf1.lite.TFLiteConverter.from_frozen_graph(
        graph_file, [input_name], list(output_names))


def convert(graph_def, int8=False, representative=None,
            input_name=freeze.INPUT_NAME, output_names=freeze.OUTPUT_NAMES):
    """The TFLite flatbuffer (bytes) of a frozen GraphDef.

    Args:
      graph_def: frozen GraphDef; with FakeQuant ops and `int8`, the ranges
        of the quantization-aware graph are used.
      int8: full-integer int8 model.
      representative: float images (numpy, NHWC) for int8: calibration of a
        float graph (one image per step), or the input range of a
        quantization-aware graph.
    """
    import tempfile
    with tempfile.NamedTemporaryFile(suffix='.pb') as graph_file:
        graph_file.write(graph_def.SerializeToString())
        graph_file.flush()
        converter = _converter(graph_file.name, input_name, output_names)
        if int8:
            if representative is None or not len(representative):
                raise ValueError('representative images are needed for an int8 model '
                                 '(the calibration, or the input range of a '
                                 'quantization-aware graph)')
            if has_fake_quant(graph_def):
                converter.inference_type = tf.int8
                converter.quantized_input_stats = {input_name: input_stats(representative)}
            else:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: (
                    [image[None].astype(np.float32)] for image in representative)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        return converter.convert()


def interpreter(model, num_threads=None):
    """ai-edge-litert's Interpreter of a model file path or flatbuffer bytes."""
    formats.require('tflite')
    from ai_edge_litert.interpreter import Interpreter
    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), num_threads=num_threads)
    return Interpreter(model_path=model, num_threads=num_threads)


def fixed_batch(interp):
    """The model's static batch size, or None when the batch is dynamic."""
    batch = int(interp.get_input_details()[0]['shape_signature'][0])
    return None if batch < 0 else batch


def prepare(interp, batch_size):
    """Resizes a dynamic batch to `batch_size` images and allocates the tensors."""
    detail = interp.get_input_details()[0]
    if fixed_batch(interp) is None and detail['shape'][0] != batch_size:
        interp.resize_tensor_input(detail['index'], [batch_size] + list(detail['shape'][1:]))
    interp.allocate_tensors()
    return interp


def _quantize(images, detail):
    if detail['dtype'] == np.float32:
        return images.astype(np.float32)
    scale, zero_point = detail['quantization']
    info = np.iinfo(detail['dtype'])
    return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(
        detail['dtype'])


def _dequantize(values, detail):
    if detail['dtype'] == np.float32:
        return values
    scale, zero_point = detail['quantization']
    return (values.astype(np.float32) - zero_point) * scale


def invoke(interp, images):
    """Runs a prepared interpreter on `images`; returns dict output name -> float array."""
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail['index'], _quantize(images, detail))
    interp.invoke()
    return {out['name']: _dequantize(interp.get_tensor(out['index']), out)
            for out in interp.get_output_details()}


def run(model, images, num_threads=None):
    """Outputs of a TFLite model (path or bytes) on float `images`, as floats.

    A model with a static batch size runs the images in batches of that size.
    """
    interp = interpreter(model, num_threads)
    batch = fixed_batch(interp)
    prepare(interp, batch or len(images))
    return checked_write.in_batches(lambda chunk: invoke(interp, chunk), images, batch)


def export_tflite(graph_def, path, images, int8=False, representative=None,
                  input_name=freeze.INPUT_NAME, output_names=freeze.OUTPUT_NAMES):
    """Converts, checks against TensorFlow on `images`, then writes `path`.

    The float model must match TensorFlow's outputs within
    `checked_write.FLOAT_TOLERANCE`; the int8 model's top-1 class must agree
    with TensorFlow's (the fake-quant graph, or the float graph for
    post-training quantization) on `checked_write.MIN_TOP1_AGREEMENT` of the
    images.

    Returns:
      (the check's summary, the model's size in bytes).

    Raises:
      checked_write.ExportCheckError: the check failed (nothing written).
      ValueError: the converter refused the graph (one line; nothing written).
    """
    formats.require('tflite')
    try:
        content = convert(graph_def, int8, representative, input_name, output_names)
    except Exception as err:  # the converter raises ConverterError and others
        if isinstance(err, ValueError) and 'representative' in str(err):
            raise
        raise ValueError('the TFLite converter refused the graph: %s'
                         % _first_line(err)) from err
    reference = checked_write.tensorflow_reference(graph_def, images, output_names,
                                                   input_name)
    check = checked_write.check_top1 if int8 else checked_write.check_close
    summary = checked_write.write_checked(path, content, run, images, reference, check)
    return summary, len(content)


def _first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    meaningful = [line for line in lines if 'error' in line.lower()] or lines or [repr(err)]
    return meaningful[0][:300]
