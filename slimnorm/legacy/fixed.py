"""tf-slim 1.1.0 functions whose own bodies break on today's stack, rewritten.

Unlike the moved TensorFlow names (`repairs`), these cannot be fixed by
handing tf-slim a better reference: the fault is a line of tf-slim's code.

- `assign_from_checkpoint` (research/slim's fine-tuning path,
  `slim.assign_from_checkpoint`): for a partitioned variable it indexes the
  checkpoint's numpy array with a *list* of slices, which NumPy >= 1.23
  rejects (`IndexError`); a tuple is what NumPy means. Same arguments, same
  result `(assign_op, feed_dict)`, same errors as tf-slim's.

`FIXED` maps (module that defines the original, name) to the replacement;
`slimnorm.legacy.patch` swaps it in wherever tf-slim exposes the original.
"""
import tensorflow as tf


def assign_from_checkpoint(model_path, var_list, ignore_missing_vars=False):
    """tf-slim's `assign_from_checkpoint`, with partitioned variables sliced by a tuple.

    var_list: a list of (possibly partitioned) variables, or a dict from
    checkpoint names to a variable or a list of variables (the slices of one
    checkpoint tensor). Returns the grouped assign op and the feed dict that
    holds the checkpoint values for its placeholders. Raises ValueError for a
    name the checkpoint lacks unless `ignore_missing_vars`, and for a
    non-partitioned variable whose shape differs from the checkpoint's.
    """
    grouped = {}
    if isinstance(var_list, (tuple, list)):
        for var in var_list:
            info = var._save_slice_info  # pylint: disable=protected-access
            grouped.setdefault(info.full_name if info else var.op.name, []).append(var)
    else:
        for name, value in var_list.items():
            grouped[name] = list(value) if isinstance(value, (tuple, list)) else [value]
    reader = tf.compat.v1.train.NewCheckpointReader(model_path)
    feed_dict, assign_ops = {}, []
    for name, variables in grouped.items():
        if not reader.has_tensor(name):
            message = "Checkpoint is missing variable [%s]" % name
            if not ignore_missing_vars:
                raise ValueError(message)
            tf.compat.v1.logging.warning(message)
            continue
        value = reader.get_tensor(name)
        for var in variables:
            placeholder = tf.compat.v1.placeholder(var.dtype.base_dtype, var.get_shape(),
                                                   name="placeholder/" + var.op.name)
            assign_ops.append(var.assign(placeholder))
            info = var._save_slice_info  # pylint: disable=protected-access
            if info:
                window = tuple(slice(start, start + size)
                               for start, size in zip(info.var_offset, info.var_shape))
                feed_dict[placeholder] = value[window].reshape(info.var_shape)
            elif var.get_shape() != value.shape:
                raise ValueError(
                    "Total size of new array must be unchanged for %s lh_shape: [%s], "
                    "rh_shape: [%s]" % (name, str(value.shape), str(var.get_shape())))
            else:
                feed_dict[placeholder] = value
    return tf.group(*assign_ops), feed_dict


FIXED = {
    ("tf_slim.ops.variables", "assign_from_checkpoint"): assign_from_checkpoint,
}
