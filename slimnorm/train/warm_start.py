"""Fine-tuning from a checkpoint, as research/slim's train_image_classifier.

    restore = warm_start_fn(checkpoint_path, exclude_scopes=['SmallConvNet/logits'])
    train_vars = variables_to_train(['SmallConvNet/logits'])
    ...
    sess.run(init); restore(sess)

Semantics (slim's ``_get_init_fn`` and ``_get_variables_to_train``):

- warm start happens only when the training directory has no checkpoint
  yet; a restarted fine-tuning run resumes from its own checkpoints (the
  loop decides that, not this module);
- every model variable (weights, batch-norm gamma/beta and moving
  statistics) is restored, except those under ``exclude_scopes``; the
  global step and optimizer slots are not: training starts at step 0 with
  fresh slots;
- a variable the checkpoint lacks is an error listing them, unless
  ``ignore_missing_vars`` (then it keeps its initial value and is named in
  the log); a variable whose shape differs from the checkpoint's is always
  an error naming both shapes (exclude its scope, e.g. the logits when the
  class count changes);
- ``trainable_scopes`` limits the variables the optimizer updates. Batch
  norm's moving statistics are not trained but updated by the UPDATE_OPS of
  a training-mode batch norm, also outside those scopes; freeze them with
  ``freeze_batch_norm`` (docs/training_notes.md).
"""
import tensorflow as tf

from slimnorm import checkpoints

tf1 = tf.compat.v1


def _in_scopes(var, scopes):
    name = var.op.name
    return any(name == scope or name.startswith(scope.rstrip('/') + '/') for scope in scopes)


def _listed(names, limit=8):
    names = list(names)
    return ', '.join(names[:limit]) + (f' and {len(names) - limit} more'
                                       if len(names) > limit else '')


def variables_to_train(trainable_scopes=()):
    """The trainable variables under ``trainable_scopes``; all of them when empty."""
    trainable = tf1.trainable_variables()
    if not trainable_scopes:
        return trainable
    chosen = [var for var in trainable if _in_scopes(var, trainable_scopes)]
    if not chosen:
        scopes = sorted({var.op.name.rsplit('/', 1)[0] for var in trainable})
        raise ValueError(f'trainable_scopes={",".join(trainable_scopes)!r} matches no '
                         f'trainable variable; accepted: scopes such as {_listed(scopes)}')
    return chosen


def warm_start_fn(checkpoint_path, exclude_scopes=(), ignore_missing_vars=False,
                  log=print):
    """Returns ``restore(sess)``, which loads the model variables from the checkpoint.

    Builds its Saver in the default graph now (call it before the graph is
    finalized); ``restore`` must run after the variables are initialized.

    Raises:
      ValueError: the path names no checkpoint; variables the checkpoint
        lacks (without ignore_missing_vars); shapes that differ.
    """
    checkpoint = checkpoints.resolve(checkpoint_path)
    stored = dict(tf.train.list_variables(checkpoint))
    candidates = [var for var in tf1.model_variables() if not _in_scopes(var, exclude_scopes)]
    missing = [var.op.name for var in candidates if var.op.name not in stored]
    mismatched = [f'{var.op.name} {var.shape.as_list()} (checkpoint {stored[var.op.name]})'
                  for var in candidates if var.op.name in stored
                  and var.shape.as_list() != list(stored[var.op.name])]
    if mismatched:
        raise ValueError(f'checkpoint_path={checkpoint!r} holds {len(mismatched)} variables '
                         f'of other shapes: {_listed(mismatched)}; accepted: a checkpoint '
                         'of this network, or leave those scopes out with '
                         '--checkpoint_exclude_scopes')
    if missing and not ignore_missing_vars:
        raise ValueError(f'checkpoint_path={checkpoint!r} lacks {len(missing)} variables: '
                         f'{_listed(missing)}; accepted: a checkpoint that has them, '
                         '--checkpoint_exclude_scopes for their scopes, or '
                         '--ignore_missing_vars to leave them at their initial values')
    restored = {var.op.name: var for var in candidates if var.op.name in stored}
    if not restored:
        raise ValueError(f'checkpoint_path={checkpoint!r} holds none of the network\'s '
                         'variables; accepted: a checkpoint of this network')
    saver = tf1.train.Saver(restored)
    excluded = len(tf1.model_variables()) - len(candidates)

    def restore(sess):
        saver.restore(sess, checkpoint)
        log(f'Warm start from {checkpoint}: restored {len(restored)} variables, '
            f'{excluded} excluded by checkpoint_exclude_scopes'
            + (f', {len(missing)} missing left at their initial values: '
               f'{_listed(missing)}' if missing else ''))
        return checkpoint

    return restore
