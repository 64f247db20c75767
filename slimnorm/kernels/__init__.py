"""Fused C++ CPU kernels for group, layer and instance norm, with a fallback.

`group_family.normalize` runs the layers' math through one fused TensorFlow
op (`SlimnormGroupNorm`, with its gradient op) when it can, and through the
TensorFlow-ops math of `slimnorm.group_math` otherwise. Both compute the
same thing (shifted float32 statistics, the same gradient); the kernel
makes two passes over the tensor forward and two backward instead of about
nine.

The kernel path is used when all of these hold, checked when the graph is
built:
  * $SLIMNORM_KERNELS is not "0" (the switch to force the fallback), and
    the graph is not built inside `with slimnorm.kernels.tf_ops_only():`
    (the same switch for one block of code: benchmarks, tests);
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

import contextlib
import logging
import os

ENV_SWITCH = "SLIMNORM_KERNELS"

_loaded = None   # (library or None, reason), once per process
_tf_ops_only = 0  # depth of tf_ops_only() blocks


def enabled():
    """False when $SLIMNORM_KERNELS or a `tf_ops_only()` block turns the kernels off."""
    off = os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "off", "no")
    return not off and not _tf_ops_only


@contextlib.contextmanager
def tf_ops_only():
    """Layers built inside use the TF-ops math (group_math), not the kernels."""
    global _tf_ops_only
    _tf_ops_only += 1
    try:
        yield
    finally:
        _tf_ops_only -= 1


def load():
    """(the loaded op library or None, the reason): compiles on first call."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
        if _loaded[0] is None:
            logging.getLogger(__name__).warning(
                "slimnorm: group/layer/instance norm run on TensorFlow ops, not the fused "
                "kernels: %s", _loaded[1])
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
    if _tf_ops_only:
        return False, "inside slimnorm.kernels.tf_ops_only()"
    if not enabled():
        return False, "disabled by %s=%s" % (ENV_SWITCH, os.environ[ENV_SWITCH])
    library, reason = load()
    return library is not None, reason
