"""Write an exported model only once it has been checked against TensorFlow.

The interface the exporters share: the model's bytes, a function that runs
a model file on a batch of images, and TensorFlow's outputs on that batch.
`write_checked` writes through `slimnorm.export.verify.write_verified` (a
temporary name beside the target, run, checked, renamed only when the check
passes; on any failure the target is left as it was) with one of the checks
below.

Two checks, one per kind of model:
- `check_close`: float models; the largest absolute difference of each
  output, relative to that output's largest magnitude, at most 1e-4.
- `check_top1`: int8 models; the share of images whose top-1 class agrees
  with the reference's, at least 99 %.
"""

import numpy as np

FLOAT_TOLERANCE = 1e-4
MIN_TOP1_AGREEMENT = 0.99


class ExportCheckError(ValueError):
    """The exported model does not agree with TensorFlow (one line)."""


def relative_error(output, reference):
    """max |output - reference| / max |reference| (0 for an all-zero reference)."""
    output = np.asarray(output, np.float64)
    reference = np.asarray(reference, np.float64)
    if output.shape != reference.shape:
        return float('inf')
    scale = np.abs(reference).max()
    error = np.abs(output - reference).max()
    return float(error / scale) if scale > 0 else float(error)


def top1_agreement(logits, reference_logits):
    """Share of rows whose argmax agrees."""
    logits, reference_logits = np.asarray(logits), np.asarray(reference_logits)
    if logits.shape != reference_logits.shape:
        return 0.0
    return float(np.mean(logits.argmax(-1) == reference_logits.argmax(-1)))


def check_close(outputs, reference, tolerance=FLOAT_TOLERANCE):
    """Float check; `outputs`, `reference`: dicts name -> array. Returns a summary."""
    errors = {name: relative_error(outputs.get(name), value)
              if name in outputs else float('inf') for name, value in reference.items()}
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tolerance:
        raise ExportCheckError(f'{worst} differ from TensorFlow\'s by a relative error of '
                               f'{errors[worst]:.3g} (accepted: <= {tolerance:g})')
    return 'relative error %s' % ', '.join(f'{name} {error:.2g}'
                                            for name, error in sorted(errors.items()))


def check_top1(outputs, reference, minimum=MIN_TOP1_AGREEMENT, name='logits'):
    """int8 check on `name`: top-1 agreement with the reference. Returns a summary."""
    agreement = top1_agreement(outputs.get(name), reference[name]) if name in outputs else 0.0
    if not agreement >= minimum:
        raise ExportCheckError(f'top-1 agreement with TensorFlow is {100 * agreement:.2f} % '
                               f'(accepted: >= {100 * minimum:g} %)')
    return f'top-1 agreement {100 * agreement:.2f} %'


def in_batches(run, images, batch_size):
    """`run` (images -> dict of arrays) over `images` in batches of a model's static
    `batch_size` (None: all at once); the last batch is padded, and trimmed after."""
    if batch_size is None or batch_size == len(images):
        return run(images)
    parts = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        count = len(chunk)
        if count < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - count,) + chunk.shape[1:],
                                                    chunk.dtype)])
        parts.append({name: value[:count] for name, value in run(chunk).items()})
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def tensorflow_reference(graph_def, images, output_names, input_name):
    """TensorFlow's outputs of a frozen GraphDef on `images`: dict name -> array.

    A graph whose input has a static batch size runs in batches of it.
    """
    from slimnorm.export import freeze
    placeholder = next(node for node in graph_def.node if node.name == input_name)
    dims = placeholder.attr['shape'].shape.dim
    batch = dims[0].size if dims and dims[0].size > 0 else None
    return in_batches(lambda chunk: dict(zip(output_names, freeze.run_graph_def(
        graph_def, chunk, output_names, input_name))), images, batch)


def write_checked(path, content, run, images, reference, check):
    """Writes `content` (bytes) to `path` once `check(run(file, images), reference)` passes.

    Args:
      path: the file to write; its directory is created.
      content: the serialized model.
      run: (model file, images) -> dict output name -> array.
      images: the batch the check runs.
      reference: dict output name -> TensorFlow's array on `images`.
      check: `check_close`, `check_top1` or alike: raises ExportCheckError,
        returns a one-line summary.

    Returns:
      The check's summary.

    Raises:
      ExportCheckError: the check failed; nothing is left at `path` that was
        not there before. Any error of `run` propagates the same way.
    """
    from slimnorm.export import verify

    def write(temporary):
        with open(temporary, 'wb') as f:
            f.write(content)

    return verify.write_verified(path, write, run, images, reference, check=check)
