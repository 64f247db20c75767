"""`python -m slimnorm.legacy script.py args...`: run a TF1 / tf-slim script unedited.

What it does before the script's first line runs:
1. `tf.compat.v1.disable_eager_execution()`: research/slim's scripts and
   most tf-slim code build graphs and run them in Sessions, which TF 2's
   default eager mode does not allow (placeholders, queue runners,
   `tf.compat.v1.train.Saver` on graph variables).
2. `patch_tf_slim()`: slimnorm's norms in tf-slim, and tf-slim's TF 2.21
   breakages repaired (see `slimnorm.tf_slim_patch`). Because the patch
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

USAGE = ("usage: python -m slimnorm.legacy [--mixed_precision {none,bfloat16,float16}] "
         "SCRIPT.py [ARGS...]\n"
         "       python -m slimnorm.legacy [--mixed_precision ...] -m MODULE [ARGS...]\n"
         "Runs a tf-slim / TF1 script unedited on TensorFlow 2.21: disables eager execution,\n"
         "applies slimnorm.tf_slim_patch.patch_tf_slim(), then runs the script as __main__.\n"
         "--mixed_precision: the Sessions of slim.learning.train and slim.evaluation get\n"
         "TensorFlow's bfloat16/float16 rewrite (slimnorm.legacy.mixed_precision).")
MIXED_PRECISION = "--mixed_precision"


def parse_options(argv):
    """(mixed_precision, the rest of argv): the runner's own options, before the script."""
    from slimnorm import precision
    mixed_precision = precision.NONE
    if argv[:1] == [MIXED_PRECISION] or (argv and argv[0].startswith(MIXED_PRECISION + "=")):
        if "=" in argv[0]:
            value, argv = argv[0].split("=", 1)[1], argv[1:]
        elif len(argv) > 1:
            value, argv = argv[1], argv[2:]
        else:
            raise ValueError("--mixed_precision needs a value (accepted: none, bfloat16, "
                             "float16)")
        mixed_precision = precision.check(value)
    return mixed_precision, argv


def parse(argv):
    """(kind, target, script_args) from our argv, kind 'path' or 'module'; ValueError if unusable."""
    if not argv:
        raise ValueError("no script given")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise ValueError("-m needs a module name")
        return "module", argv[1], argv[2:]
    if argv[0].startswith("-"):
        raise ValueError("unknown option %r (accepted: --mixed_precision, -m MODULE, -h)"
                         % argv[0])
    if not os.path.isfile(argv[0]):
        raise ValueError("script %r is not a file" % argv[0])
    return "path", argv[0], argv[1:]


def prepare(mixed_precision="none"):
    """Graph mode and the tf-slim patch: what every legacy script needs first."""
    import tensorflow as tf

    from slimnorm.legacy import mixed_precision as legacy_precision
    from slimnorm.tf_slim_patch import patch_tf_slim

    tf.compat.v1.disable_eager_execution()
    changes = patch_tf_slim()
    legacy_precision.apply(mixed_precision)
    return changes


def main(argv=None):
    """Console entry point (`slimnorm-legacy`); returns the exit status for usage errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        mixed_precision, argv = parse_options(argv)
        kind, target, script_args = parse(argv)
    except ValueError as error:
        print("slimnorm.legacy: %s\n%s" % (error, USAGE), file=sys.stderr)
        return 2
    prepare(mixed_precision)
    if kind == "module":
        sys.argv = [target] + script_args
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target] + script_args
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")
    return 0
