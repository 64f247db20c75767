"""The one list of tf-slim normalization tests slimnorm skips, with why.

Keyed by (test class, test method); the value is the reason slimnorm
deliberately differs from tf-slim there in a way a user would want.
"""
SKIPS = {
    ("GroupNormTest", "testParamsShapeNotFullyDefinedReductionAxes"):
        "slim refuses group norm on inputs whose reduction axes (height, width) are "
        "unknown when the graph is built; slimnorm normalises them (the statistics "
        "use the dynamic shape), so fully-convolutional detection and segmentation "
        "models, group norm's main users, run on images of any size. The channel "
        "axis must still be static, as in slim.",
}
