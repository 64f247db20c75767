"""Inference and transfer tools: freezing, batch-norm folding, SavedModel,
TFLite and ONNX models (float and int8, each checked before it is written),
precise batch-norm statistics and Caffe BatchNorm+Scale import.

Nothing is imported here, so that `slimnorm.export.cli` can check its flags
before TensorFlow loads; import the modules themselves:

    from slimnorm.export import freeze, fold, saved_model, precise_bn, caffe
    from slimnorm.export import tflite, onnx   # the `tflite` / `onnx` extras
"""
