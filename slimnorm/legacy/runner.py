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

USAGE = ("usage: {prog} SCRIPT.py [ARGS...]\n"
         "       {prog} -m MODULE [ARGS...]\n"
         "Runs a tf-slim / TF1 script unedited on TensorFlow 2.21: disables eager execution,\n"
         "applies slimnorm.legacy.patch.patch_tf_slim(), then runs the script as __main__.")


def parse(argv):
    """(kind, target, script_args) from our argv, kind 'path' or 'module'; ValueError if unusable."""
    if not argv:
        raise ValueError("no script given")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise ValueError("-m needs a module name")
        return "module", argv[1], argv[2:]
    if argv[0].startswith("-"):
        raise ValueError("unknown option %r (accepted: -m MODULE, -h)" % argv[0])
    if not os.path.isfile(argv[0]):
        raise ValueError("script %r is not a file" % argv[0])
    return "path", argv[0], argv[1:]


def prepare():
    """Graph mode and the tf-slim patch: what every legacy script needs first."""
    import tensorflow as tf

    from slimnorm.legacy.patch import patch_tf_slim

    tf.compat.v1.disable_eager_execution()
    return patch_tf_slim()


def main(argv=None, prog="slimnorm legacy"):
    """`slimnorm legacy` (and `python -m slimnorm.legacy`); returns the exit status of usage errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE.format(prog=prog))
        return 0
    try:
        kind, target, script_args = parse(argv)
    except ValueError as error:
        print("%s: error: %s\n%s" % (prog, error, USAGE.format(prog=prog)), file=sys.stderr)
        return 2
    prepare()
    if kind == "module":
        sys.argv = [target] + script_args
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target] + script_args
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    return 0
