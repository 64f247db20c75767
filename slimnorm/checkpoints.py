"""Where a checkpoint is: the one resolver of checkpoint paths.

A checkpoint is named by its prefix (``runs/x/model.ckpt-600``, whose
``.index`` file exists) or by a training directory, whose ``checkpoint``
state file names its latest one. :func:`check_path` refuses anything else
without importing TensorFlow, so the command line can do it before
TensorFlow loads; :func:`resolve` returns the prefix.
"""
import os


def check_path(path, arg='checkpoint_path'):
    """Returns `path` if it can name a checkpoint; ValueError otherwise."""
    if path and os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, 'checkpoint')):
            raise ValueError(
                "%s=%r is a directory without checkpoints (it has no 'checkpoint' "
                "state file); accepted: a training directory or a checkpoint "
                "prefix" % (arg, path))
    elif not path or not os.path.isfile(path + '.index'):
        raise ValueError(
            "%s=%r is neither a directory with checkpoints nor a checkpoint prefix; "
            "accepted: a training directory or a prefix such as "
            "runs/x/model.ckpt-600 (whose .index exists)" % (arg, path))
    return path


def directory(path):
    """The training directory of ``path``: itself, or the directory of a checkpoint prefix."""
    return path if os.path.isdir(path) else os.path.dirname(path) or '.'


def resolve(path, arg='checkpoint_path'):
    """The checkpoint prefix of `path`: the prefix itself, or a directory's latest."""
    check_path(path, arg)
    if not os.path.isdir(path):
        return path
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
        raise ValueError(
            "%s=%r: its 'checkpoint' state file names no checkpoint that exists; "
            "accepted: a training directory or a checkpoint prefix" % (arg, path))
    return latest
