"""Precise batch norm: moving statistics recomputed with the weights fixed.

The moving averages a batch norm keeps during training lag the weights: at
step t they still hold batches computed with the weights of steps t - 1/(1 -
decay) and earlier (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm").
Precise BN (fvcore's `update_bn_stats`, detectron2's `PreciseBN` hook)
replaces them, after training, by the average over N batches of the
statistics the final weights produce.

What is averaged is exactly what the moving-average update of each layer
would have received (`slimnorm.batch_norm`'s update ops: the batch mean, and
the batch variance as `moving_variance_estimator` says), so the result is a
drop-in for the EMA. As in fvcore, every layer normalizes with its batch
statistics during these forward passes (training-mode batch norm; no
gradient, no weight changes), and the N per-batch values get equal weights.
Batch renorm updates moving_variance through `moving_stddev` (slim's layer,
`slimnorm.batch_renorm`); its averaged batch variance is the one under that
update's sqrt(variance + epsilon), and `moving_stddev`, which only training
reads, is left as trained.
Dropout does not matter: in slim's networks none sits before a batch norm.

    graph: the network built with is_training=True on `images`
    tensors = statistic_tensors(graph)      # {moving variable: batch value}
    new = average_statistics(sess, tensors, ({images: b} for b in batches))
"""

import numpy as np
import tensorflow as tf

from slimnorm.export import checkpoint_io
from slimnorm.export.names import short_list

tf1 = tf.compat.v1

MOVING_NAMES = ('moving_mean', 'moving_variance')
_ASSIGN_SUB_OPS = ('AssignSubVariableOp', 'AssignSub')


def _variable_name(op):
    """The variable an assign op writes (resource handle or ref variable)."""
    source = op.inputs[0].op
    return source.name


def _update_value(op):
    """`value` of `v -= (v - value) * (1 - decay)`, or None for another form."""
    delta = op.inputs[1].op
    if delta.type != 'Mul':
        return None
    for operand in delta.inputs:
        sub = operand.op
        if sub.type == 'Sub' and sub.inputs[0].op.type in ('ReadVariableOp', 'Identity',
                                                            'VariableV2'):
            value = sub.inputs[1]
            return value.op.inputs[0] if value.op.type == 'Cast' else value
    return None


def _renorm_stddevs(moving):
    """Batch renorm (slim's layer) updates moving_variance through `moving_stddev`."""
    return [name.rsplit('/', 1)[0] + '/moving_stddev' for name in moving
            if name.endswith('/moving_variance')]


def _renorm_batch_variance(stddev_value):
    """`variance` of the renorm stddev update's value sqrt(variance + epsilon), or None."""
    add = stddev_value.op.inputs[0].op if stddev_value.op.type == 'Sqrt' else None
    if add is None or add.type not in ('Add', 'AddV2'):
        return None
    return add.inputs[0]


def statistic_tensors(graph):
    """{moving_mean/moving_variance variable name: its batch value tensor}.

    The graph must hold the network built in training mode with a Python
    `is_training=True` (the values of a tf.cond branch cannot be fetched).

    Raises:
      ValueError: naming the variables without such an update (e.g. built
        with is_training=False, or zero_debias_moving_mean, whose update has
        another form), or when the graph has no batch norm at all.
    """
    moving = sorted(v.op.name for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                    if v.op.name.rsplit('/', 1)[-1] in MOVING_NAMES)
    if not moving:
        raise ValueError('graph has no moving_mean/moving_variance variables: '
                         'no batch norm to recompute')
    found = {}
    for op in graph.get_operations():
        if op.type in _ASSIGN_SUB_OPS and _variable_name(op) in moving + _renorm_stddevs(moving):
            value = _update_value(op)
            if value is not None:
                found[_variable_name(op)] = value
    for stddev in _renorm_stddevs(moving):
        if stddev in found:
            variance = _renorm_batch_variance(found.pop(stddev))
            if variance is not None:
                found[stddev.rsplit('/', 1)[0] + '/moving_variance'] = variance
    missing = [name for name in moving if name not in found]
    if missing:
        raise ValueError(
            'no moving-average update v -= (v - value) * (1 - decay) for %s; '
            'build the network with is_training=True (a Python bool) and '
            'without zero_debias_moving_mean' % short_list(missing))
    return found


def average_statistics(sess, tensors, feeds):
    """Equal-weight average over the batches of `feeds` of every tensor.

    Args:
      sess: a session holding the (restored) weights.
      tensors: {name: tensor}, e.g. from `statistic_tensors`.
      feeds: iterable of feed dicts, one per batch (at least one).

    Returns:
      {name: float64 numpy array}; nothing is assigned.
    """
    names = sorted(tensors)
    fetches = [tensors[name] for name in names]
    sums, count = None, 0
    for feed in feeds:
        values = sess.run(fetches, feed)
        if sums is None:
            sums = [np.asarray(v, np.float64) for v in values]
        else:
            sums = [s + v for s, v in zip(sums, values)]
        count += 1
    if count == 0:
        raise ValueError('feeds is empty: at least one batch is needed')
    return {name: s / count for name, s in zip(names, sums)}


def batches(images, num_batches, batch_size, seed=0):
    """`num_batches` batches of `images`, each epoch in a seeded random order
    (slimnorm.data.datasets.BatchSchedule, as training draws them)."""
    from slimnorm.data.datasets import BatchSchedule
    if num_batches < 1:
        raise ValueError('num_batches=%r must be >= 1' % (num_batches,))
    if batch_size > len(images):
        raise ValueError('batch_size=%d is larger than the %d images'
                         % (batch_size, len(images)))
    schedule = BatchSchedule(len(images), batch_size, seed)
    for step in range(num_batches):
        yield images[schedule.indices(step)]


def precise_bn_checkpoint(build_fn, image_shape, checkpoint_path, output_prefix,
                          image_batches, session_config=None):
    """Writes a copy of a checkpoint with recomputed moving statistics.

    Args:
      build_fn: `build_fn(images)` builds the network in training mode.
      image_shape: (height, width, channels) of the images fed.
      checkpoint_path: the checkpoint prefix to start from.
      output_prefix: where to write the new checkpoint (every other tensor
        of the old one, optimizer slots and global_step included, is copied).
      image_batches: iterable of image arrays, one per batch.
      session_config: the Session's ConfigProto, e.g.
        ``slimnorm.precision.session_config('bfloat16')`` (the statistics
        are float32 either way).

    Returns:
      (output prefix, {variable: (old value, new value)}).
    """
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, (None,) + tuple(image_shape), name='images')
        build_fn(images)
        tensors = statistic_tensors(graph)
        from slimnorm.train import saved_run
        saved_run.check_variables(saved_run.graph_variables(graph), checkpoint_path)
        old = checkpoint_io.read_checkpoint(checkpoint_path)
        saver = tf1.train.Saver(tf1.global_variables())
        with tf1.Session(config=session_config) as sess:
            saver.restore(sess, checkpoint_path)
            new = average_statistics(sess, tensors,
                                     ({images: batch} for batch in image_batches))
    values = dict(old)
    changes = {}
    for name, value in new.items():
        if name not in old:
            raise ValueError('%s is not in checkpoint %r: it was trained with '
                             'another network' % (name, checkpoint_path))
        values[name] = value.astype(old[name].dtype)
        changes[name] = (old[name], values[name])
    return checkpoint_io.write_checkpoint(values, output_prefix), changes
