"""Fused C++ CPU kernels for group, layer and instance norm, with a fallback.

`group_family.normalize` runs the layers' math through one fused TensorFlow
op (`SlimnormGroupNorm`, with its gradient op) when it can, and through the
TensorFlow-ops math of `slimnorm.group_math` otherwise. Both compute the
same thing (shifted float32 statistics, the same gradient); the kernel
makes two passes over the tensor forward and two backward instead of about
nine.

The kernel path is used when all of these hold, checked when the graph is
built:
  * $SLIMNORM_KERNELS is not "0" (the switch to force the fallback);
  * the kernels compile and load (`build`: on first use, cached);
  * the inputs are float32, float16 or bfloat16 (float64 falls back);
  * the layer's axes fit the kernel's view: samples, then reduced positions,
    then channels, or samples, channels, positions (NHWC and NCHW images,
    [N, C] dense inputs, and layer norm's usual axes; an axis with its own
    statistics between the reduced ones falls back);
  * the op is not placed on a GPU (no GPU kernel: with a GPU visible and no
    device given, TensorFlow's own ops run there instead).

`kernels_available()` says whether the library loads and, if not, why.
"""

import os

ENV_SWITCH = "SLIMNORM_KERNELS"

_loaded = None   # (library or None, reason), once per process


def enabled_by_env():
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


def load():
    """(the loaded op library or None, the reason): compiles on first call."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded


def _load():
    from slimnorm.kernels import build

    try:
        path = build.build()
    except build.BuildError as exc:
        return None, str(exc)
    import tensorflow as tf

    try:
        library = tf.load_op_library(path)
    except (tf.errors.OpError, OSError) as exc:
        return None, "loading %s failed: %s" % (path, exc)
    return library, "compiled library %s" % path


def kernels_available():
    """(True, where the library is) or (False, why the TF-ops path runs).

    Compiles the kernels if they are not cached yet. Per-layer reasons to
    fall back (dtype, axes, GPU placement) are not covered: see the module
    docstring.
    """
    if not enabled_by_env():
        return False, "disabled by %s=%s" % (ENV_SWITCH, os.environ[ENV_SWITCH])
    library, reason = load()
    return library is not None, reason
