"""tf-slim 1.1.0's own `batch_norm`, made to run on TensorFlow 2.21: a test-only oracle.

slim's batch norm sends most arguments to `tf.compat.v1.layers`'
BatchNormalization, which TensorFlow 2.21 loads lazily from
`tf_keras.legacy_tf_layers`; tf-keras 2.21 ships that module as
`tf_keras.src.legacy_tf_layers`. With that alias, and slimnorm's repairs of
the TensorFlow names tf-slim imports from their old places (`ops.Tensor`,
`control_flow_ops.cond`, ..., `slimnorm.legacy.repairs`) in effect while the
graph is built, slim's unedited function builds slim's graph.

Only tests import this module (the library never imports tf_keras).
`require()` skips the calling test, with the reason, when tf-keras is not
installed (`pip install --no-deps tf-keras==2.21.0`: its declared
dependencies would pull in the full `tensorflow` wheel over tensorflow-cpu).
"""
import contextlib
import importlib
import sys

import pytest

ALIASES = {
    "tf_keras.legacy_tf_layers": "tf_keras.src.legacy_tf_layers",
    "tf_keras.legacy_tf_layers.normalization": "tf_keras.src.legacy_tf_layers.normalization",
}


def available():
    try:
        importlib.import_module("tf_keras.src.legacy_tf_layers.normalization")
    except ImportError:
        return False
    return True


def require():
    if not available():
        pytest.skip("tf-keras 2.21 is not installed: the real tf-slim batch_norm cannot run "
                    "(pip install --no-deps tf-keras==2.21.0)")


def _alias():
    for alias, real in ALIASES.items():
        if alias not in sys.modules:
            sys.modules[alias] = importlib.import_module(real)


@contextlib.contextmanager
def slim_functions():
    """Inside: {'batch_norm': ..., 'layer_norm': ...} as tf-slim 1.1.0 defines them.

    Build graphs inside the block; run them anywhere. TensorFlow's modules are
    never edited, and tf-slim's are as before on exit (an outer patch_tf_slim
    stays in effect).
    """
    require()
    _alias()
    from slimnorm import tf_slim_patch
    with tf_slim_patch.patched_tf_slim(warn_captured=False):
        layers = sys.modules["tf_slim.layers.layers"]
        normalization = sys.modules["tf_slim.layers.normalization"]
        yield {
            "batch_norm": tf_slim_patch._find_original(layers, "batch_norm"),
            "layer_norm": tf_slim_patch._find_original(layers, "layer_norm"),
            "group_norm": tf_slim_patch._find_original(normalization, "group_norm"),
            "instance_norm": tf_slim_patch._find_original(normalization, "instance_norm"),
        }


def batch_norm(inputs, **kwargs):
    """tf-slim's batch_norm on `inputs` in the current graph."""
    with slim_functions() as slim:
        return slim["batch_norm"](inputs, **kwargs)
