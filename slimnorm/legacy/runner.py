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

USAGE = ("usage: {prog} [--tf1_api] [--mixed_precision {{none,bfloat16,float16}}] "
         "SCRIPT.py [ARGS...]\n"
         "       {prog} [--tf1_api] [--mixed_precision ...] -m MODULE [ARGS...]\n"
         "Runs a tf-slim / TF1 script unedited on TensorFlow 2.21: disables eager execution,\n"
         "applies slimnorm.legacy.patch.patch_tf_slim(), provides a tensorflow.contrib\n"
         "stand-in (slim, quantize, training.HParams), then runs the script as __main__.\n"
         "--tf1_api: `import tensorflow as tf` in your own files gives tf.compat.v1 (+ contrib).\n"
         "--mixed_precision: the Sessions of slim.learning.train and slim.evaluation get\n"
         "TensorFlow's bfloat16/float16 rewrite (slimnorm.legacy.mixed_precision).")
TF1_API_OPTION = "--tf1_api"
MIXED_PRECISION = "--mixed_precision"


def parse_options(argv):
    """(tf1_api, mixed_precision, the rest of argv): the runner's own options, before the script."""
    from slimnorm import precision
    tf1_api, mixed_precision = False, precision.NONE
    while argv and (argv[0] == TF1_API_OPTION or argv[0] == MIXED_PRECISION
                    or argv[0].startswith(MIXED_PRECISION + "=")):
        if argv[0] == TF1_API_OPTION:
            tf1_api, argv = True, argv[1:]
        elif "=" in argv[0]:
            mixed_precision, argv = precision.check(argv[0].split("=", 1)[1]), argv[1:]
        elif len(argv) > 1:
            mixed_precision, argv = precision.check(argv[1]), argv[2:]
        else:
            raise ValueError("--mixed_precision needs a value (accepted: none, bfloat16, "
                             "float16)")
    return tf1_api, mixed_precision, argv


def parse(argv):
    """(kind, target, script_args) from our argv, kind 'path' or 'module'; ValueError if unusable."""
    if not argv:
        raise ValueError("no script given")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise ValueError("-m needs a module name")
        return "module", argv[1], argv[2:]
    if argv[0].startswith("-"):
        raise ValueError("unknown option %r (accepted: --tf1_api, --mixed_precision, "
                         "-m MODULE, -h)" % argv[0])
    if not os.path.isfile(argv[0]):
        raise ValueError("script %r is not a file" % argv[0])
    return "path", argv[0], argv[1:]


def prepare(tf1_api=False, mixed_precision="none"):
    """Graph mode, the tf-slim patch, the contrib stand-in, the TF 1 API view and precision."""
    import tensorflow as tf

    from slimnorm.legacy import contrib
    from slimnorm.legacy import mixed_precision as legacy_precision
    from slimnorm.legacy import tf1_api as tf1_view
    from slimnorm.legacy.patch import patch_tf_slim

    tf.compat.v1.disable_eager_execution()
    changes = patch_tf_slim()
    contrib.install()
    if tf1_api:
        tf1_view.install()
    legacy_precision.apply(mixed_precision)
    return changes


def main(argv=None, prog="slimnorm legacy"):
    """`slimnorm legacy` (and `python -m slimnorm.legacy`); returns the exit status of usage errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE.format(prog=prog))
        return 0
    try:
        tf1_api, mixed_precision, argv = parse_options(argv)
        kind, target, script_args = parse(argv)
    except ValueError as error:
        print("%s: error: %s\n%s" % (prog, error, USAGE.format(prog=prog)), file=sys.stderr)
        return 2
    prepare(tf1_api, mixed_precision)
    if kind == "module":
        sys.argv = [target] + script_args
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target] + script_args
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    return 0
