"""`python -m slimnorm.legacy script.py args...`: run a TF1 / tf-slim script unedited.

What it does before the script's first line runs:
1. `tf.compat.v1.disable_eager_execution()`: research/slim's scripts and
   most tf-slim code build graphs and run them in Sessions, which TF 2's
   default eager mode does not allow (placeholders, queue runners,
   `tf.compat.v1.train.Saver` on graph variables).
2. `patch_tf_slim()`: slimnorm's norms in tf-slim, and tf-slim's TF 2.21
   breakages repaired (see `slimnorm.legacy.patch`). Because the patch
   comes first, module-level captures of `slim.batch_norm` in the script's
   imports (research/slim's mobilenet_v3) get slimnorm's norm.
   A `tensorflow.contrib` stand-in is registered (`slimnorm.legacy.contrib`:
   `slim`, `quantize`, `training.HParams`), so research/slim's
   `from tensorflow.contrib import quantize as contrib_quantize` imports.
   With `--tf1_api` (before the script), `import tensorflow as tf` in the
   user's own files gives TF 1's API, `tf.compat.v1` plus `tf.contrib`
   (`slimnorm.legacy.tf1_api`); installed libraries keep the real module.
3. The script runs as `__main__` with `sys.argv = [script, args...]` and its
   directory first on `sys.path`, as `python script.py args...` would do, so
   its own imports (`from nets import nets_factory`) resolve. `-m module`
   runs a module instead, as `python -m module` would.

The exit status is the script's. Usage errors (no script, a missing file,
an unknown option) exit with status 2 before anything is patched or run.
"""
import os
import runpy
import sys

USAGE = ("usage: {prog} [--tf1_api] SCRIPT.py [ARGS...]\n"
         "       {prog} [--tf1_api] -m MODULE [ARGS...]\n"
         "Runs a tf-slim / TF1 script unedited on TensorFlow 2.21: disables eager execution,\n"
         "applies slimnorm.legacy.patch.patch_tf_slim(), provides a tensorflow.contrib\n"
         "stand-in (slim, quantize, training.HParams), then runs the script as __main__.\n"
         "--tf1_api: `import tensorflow as tf` in your own files gives tf.compat.v1 (+ contrib).")


TF1_API_OPTION = "--tf1_api"


def parse(argv):
    """(kind, target, script_args) from our argv, kind 'path' or 'module'; ValueError if unusable."""
    if not argv:
        raise ValueError("no script given")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise ValueError("-m needs a module name")
        return "module", argv[1], argv[2:]
    if argv[0].startswith("-"):
        raise ValueError("unknown option %r (accepted: --tf1_api, -m MODULE, -h)" % argv[0])
    if not os.path.isfile(argv[0]):
        raise ValueError("script %r is not a file" % argv[0])
    return "path", argv[0], argv[1:]


def prepare(tf1_api=False):
    """Graph mode, the tf-slim patch and the contrib stand-in (and the TF 1 API view)."""
    import tensorflow as tf

    from slimnorm.legacy import contrib
    from slimnorm.legacy import tf1_api as tf1_view
    from slimnorm.legacy.patch import patch_tf_slim

    tf.compat.v1.disable_eager_execution()
    changes = patch_tf_slim()
    contrib.install()
    if tf1_api:
        tf1_view.install()
    return changes


def main(argv=None, prog="slimnorm legacy"):
    """`slimnorm legacy` (and `python -m slimnorm.legacy`); returns the exit status of usage errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE.format(prog=prog))
        return 0
    tf1_api = argv[:1] == [TF1_API_OPTION]
    try:
        kind, target, script_args = parse(argv[1:] if tf1_api else argv)
    except ValueError as error:
        print("%s: error: %s\n%s" % (prog, error, USAGE.format(prog=prog)), file=sys.stderr)
        return 2
    prepare(tf1_api)
    if kind == "module":
        sys.argv = [target] + script_args
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target] + script_args
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    return 0
