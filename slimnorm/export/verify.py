"""Verify, then commit: an export gets its name only after what was written ran right.

    logits = reference_logits(...)              # the checkpoint's, in eval mode
    error = verify.write_verified(
        'model.pb', write=lambda path: write_graph_def(graph_def, path),
        run=lambda path, images: run_graph_def(read_graph_def(path), images)[0],
        images=batch, reference=logits)

The artifact (a file or a directory: GraphDef, SavedModel, TFLite, ONNX,
...) is written under a temporary name beside the final one
(:func:`temporary_path`), read back and run on one batch by ``run``, and
its logits compared with ``reference``; only if they agree is it renamed
to its final name (``os.replace``, atomic on one file system). Otherwise
the temporary is deleted and :class:`ExportMismatchError` says by how much
they differ: no wrong or half-written artifact is ever left under the
name the user asked for.

Agreement: ``max |logits - reference| <= tolerance * max(1, max |reference|)``
with all values finite and the shapes equal. The default tolerance, 1e-4,
holds for the frozen graph (same kernels, bit-identical in practice), the
folded one (float32 rounding of the folded weights) and the SavedModel;
a quantizing writer passes its own.
"""
import os
import shutil

import numpy as np

DEFAULT_TOLERANCE = 1e-4


class ExportMismatchError(RuntimeError):
    """What was written does not compute the checkpoint's logits; it was deleted."""


def temporary_path(final_path):
    """A hidden sibling of ``final_path`` for writing (same file system: rename works)."""
    directory, name = os.path.split(os.path.abspath(final_path))
    return os.path.join(directory, f'.{name}.tmp-{os.getpid()}')


def discard(path):
    """Removes a file or a directory tree if it is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def relative_error(logits, reference):
    """``max |logits - reference| / max(1, max |reference|)`` (inf for a shape mismatch)."""
    logits, reference = np.asarray(logits, np.float64), np.asarray(reference, np.float64)
    if logits.shape != reference.shape or not np.all(np.isfinite(logits)):
        return float('inf')
    scale = max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)
    return float(np.max(np.abs(logits - reference))) / scale if logits.size else 0.0


def verify(path, run, images, reference, tolerance=DEFAULT_TOLERANCE):
    """Runs the artifact at ``path`` on ``images``; returns the error, or raises.

    ``run(path, images)`` returns its logits (it loads the artifact itself,
    as a user of it would). Raises ExportMismatchError when they disagree
    with ``reference`` (see the module docstring).
    """
    logits = np.asarray(run(path, images))
    error = relative_error(logits, reference)
    if not error <= tolerance:
        reference = np.asarray(reference)
        detail = (f'shape {list(logits.shape)} instead of {list(reference.shape)}'
                  if logits.shape != reference.shape else f'relative error {error:.3g}')
        raise ExportMismatchError(
            f'the written {os.path.basename(path)} does not reproduce the checkpoint\'s '
            f'logits on a batch of {len(images)}: {detail} > tolerance {tolerance:g}; '
            'nothing was written')
    return error


def commit(temp_path, final_path):
    """Renames the verified ``temp_path`` to ``final_path`` (an empty directory is replaced)."""
    if os.path.isdir(temp_path) and os.path.isdir(final_path) and not os.listdir(final_path):
        os.rmdir(final_path)
    os.replace(temp_path, final_path)


def write_verified(final_path, write, run, images, reference, tolerance=DEFAULT_TOLERANCE,
                   check=None):
    """``write(temp)``, check it, then :func:`commit`; returns what the check returns.

    The check is :func:`verify` (logits within ``tolerance``), or
    ``check(run(temp, images), reference)`` when given (which raises, or
    returns a summary: the TFLite/ONNX writers' checks). On any failure
    (writing, loading, running, disagreeing) the temporary is deleted and
    ``final_path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(directory, exist_ok=True)
    temp = temporary_path(final_path)
    discard(temp)
    try:
        write(temp)
        if check is None:
            result = verify(temp, run, images, reference, tolerance)
        else:
            result = check(run(temp, images), reference)
        commit(temp, final_path)
    except BaseException:
        discard(temp)
        raise
    return result


def random_images(shape, count=8, seed=0):
    """Deterministic inputs in [0, 1) of ``shape`` (height, width, channels)."""
    rng = np.random.RandomState(seed)
    return rng.rand(count, *shape).astype(np.float32)
