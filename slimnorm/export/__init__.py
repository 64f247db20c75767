"""Inference and transfer tools: freezing, batch-norm folding, SavedModel,
precise batch-norm statistics and Caffe BatchNorm+Scale import.

Nothing is imported here, so that `slimnorm.export.cli` can check its flags
before TensorFlow loads; import the modules themselves:

    from slimnorm.export import freeze, fold, saved_model, precise_bn, caffe
"""
