"""slimnorm: normalization layers for tf.compat.v1 / tf-slim graph code.

On TensorFlow 2.21 `tf_slim.batch_norm` no longer runs (it reaches for
modules TensorFlow removed). slimnorm re-implements it on `tf.nn`
primitives with the same signature, variable names and semantics, so
`slim.batch_norm` -> `slimnorm.batch_norm` is the only change a user makes.

`slimnorm.reference` (numpy) and `slimnorm.datasets` (optional extras) are
not imported here on purpose: `import slimnorm` needs only TensorFlow,
tf-slim and numpy.
"""

try:
    import tensorflow as _tf  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without TF only
    raise ImportError(
        "slimnorm needs TensorFlow 2.21, which is installed through an extra: "
        "`pip install 'slimnorm[cpu]'` (tensorflow-cpu) or "
        "`pip install 'slimnorm[gpu]'` (tensorflow[and-cuda]). "
        "Original error: %s" % exc
    ) from exc

from slimnorm.batch_norm import batch_norm, batch_norm_layer  # noqa: E402
from slimnorm.group_norm import group_norm  # noqa: E402
from slimnorm.instance_norm import instance_norm  # noqa: E402
from slimnorm.layer_norm import layer_norm  # noqa: E402
from slimnorm import training  # noqa: E402,F401  (create_train_op, check_update_ops)

__all__ = ["batch_norm", "batch_norm_layer", "group_norm", "instance_norm", "layer_norm"]
__version__ = "0.1.0"
