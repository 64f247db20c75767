"""Clones: one model replicated on several devices of one process (research/slim's model_deploy).

    devices = clones.clone_devices(2, clone_on_cpu=True)     # CPU:0, CPU:1
    built = clones.create_clones(model_fn, devices, inputs=[(x0, y0), (x1, y1)])
    total_loss = clones.total_clone_loss(built)
    train_op = slimnorm.training.create_train_op(total_loss, optimizer,
                                                 colocate_gradients_with_ops=True)

What a clone is and what is shared:

- clone ``i`` is ``model_fn(*inputs[i])`` built under the name scope
  ``clone_i`` on ``devices[i]``. Variables are created once, by clone 0, with
  the names a one-device graph gives them (clone scopes are name scopes only),
  on ``variables_device``; the other clones reuse them. Checkpoints of a
  cloned run therefore restore into a one-device graph and the reverse;
- losses: each clone's losses (``tf.compat.v1.losses`` collection, within its
  scope) are summed and divided by the number of clones; the regularization
  losses exist once (the variables exist once) and are added once. The sum of
  these is one scalar whose gradient, computed with
  ``colocate_gradients_with_ops=True``, runs each clone's backward pass on its
  own device and adds the clones' contributions: the averaged gradient of
  model_deploy, for clone batches of equal size;
- batch-norm updates: only clone 0's ops stay in ``UPDATE_OPS``; the others'
  are taken out of the collection as each clone is built. model_deploy did
  the same, and it is the consistent choice: every clone normalizes with the
  statistics of its own batch (per-clone batch norm), so the moving
  statistics should estimate that same per-clone-batch distribution. Running
  every clone's update would apply N exponential-average steps per training
  step to one variable, in no fixed order (a decay of ``decay ** N`` biased
  towards whichever clone ran last), without estimating anything better.
  Cross-replica (synchronized) batch norm, which normalizes with the
  statistics of all clones together, is a different layer; it finds its
  group with :func:`current_clone`;
- summaries: model code builds its summaries as usual; only those built in
  clone 0 (or outside the clones) should be kept, see
  :func:`drop_clone_summaries`.

On CPU-only machines, clones on ``/device:CPU:i`` need a session with that
many CPU devices: ``ConfigProto(device_count={'CPU': n})``
(``slimnorm.train.config.clone_device_count``; ``TrainConfig.session_config``
sets it). That is a per-session setting, so unlike
``tf.config.set_logical_device_configuration`` it works after TensorFlow has
started, and tests need no fresh process.
"""
import contextlib
import dataclasses
import threading

import tensorflow as tf

from slimnorm import checks

tf1 = tf.compat.v1

CLONE_SCOPE_PREFIX = 'clone_'
# Op types that hold variables: the ones ``variables_device`` places.
VARIABLE_OP_TYPES = frozenset({'Variable', 'VariableV2', 'VarHandleOp', 'AutoReloadVariable',
                               'MutableHashTable', 'MutableHashTableV2',
                               'MutableHashTableOfTensors', 'MutableHashTableOfTensorsV2',
                               'MutableDenseHashTable', 'MutableDenseHashTableV2'})


@dataclasses.dataclass(frozen=True)
class CloneContext:
    """Which clone is being built: its index, how many there are, its device and scope."""
    index: int
    num_clones: int
    device: str
    scope: str


@dataclasses.dataclass
class Clone:
    """One built clone: what ``model_fn`` returned, its name scope and device."""
    outputs: object
    scope: str
    device: str
    index: int


_BUILDING = threading.local()


def current_clone():
    """The :class:`CloneContext` of the clone being built, or None outside clones.

    For layers that need their replica group, e.g. synchronized batch norm:
    ``num_clones`` is the group size and ``index`` the member.
    """
    return getattr(_BUILDING, 'context', None)


@contextlib.contextmanager
def _building(context):
    previous = current_clone()
    _BUILDING.context = context
    try:
        yield context
    finally:
        _BUILDING.context = previous


def clone_devices(num_clones, clone_on_cpu=False, worker_device=''):
    """Device strings of ``num_clones`` clones: GPU:i, or CPU:i with ``clone_on_cpu``.

    ``worker_device`` prefixes each, e.g. ``'/job:worker/task:1'``.
    """
    checks.integer(num_clones, 'num_clones', minimum=1)
    kind = 'CPU' if clone_on_cpu else 'GPU'
    return [f'{worker_device}/device:{kind}:{i}' for i in range(num_clones)]


def _device_function(clone_device, variables_device):
    """Variables on ``variables_device`` (a string or device function), the rest on the clone's."""
    def choose(op):
        if op.type in VARIABLE_OP_TYPES:
            return variables_device(op) if callable(variables_device) else variables_device
        return clone_device
    return choose


def create_clones(model_fn, devices, inputs=None, variables_device='/device:CPU:0'):
    """Builds ``model_fn(*inputs[i])`` on each of ``devices``; returns a list of :class:`Clone`.

    Args:
      model_fn: builds the model of one clone (creating or reusing variables
        through ``tf.compat.v1.get_variable``/slim, as slim networks do) and
        returns anything, e.g. ``(logits, end_points)``.
      devices: one device string per clone (:func:`clone_devices`).
      inputs: None (``model_fn()`` for every clone) or one tuple of positional
        arguments per clone.
      variables_device: device string or device function (e.g.
        ``replica_device_setter``) for the variables; None leaves them with
        the clone 0 ops.
    """
    devices = list(devices)
    if not devices or not all(isinstance(d, str) for d in devices):
        raise ValueError(f'devices={devices!r}; accepted: a non-empty list of device strings')
    if inputs is None:
        inputs = [()] * len(devices)
    inputs = list(inputs)
    if len(inputs) != len(devices):
        raise ValueError(f'inputs has {len(inputs)} entries for {len(devices)} devices; '
                         'accepted: one tuple of arguments per clone')
    update_ops = tf1.get_collection_ref(tf1.GraphKeys.UPDATE_OPS)
    built = []
    for index, (device, args) in enumerate(zip(devices, inputs)):
        scope = f'{CLONE_SCOPE_PREFIX}{index}'
        before = list(update_ops)
        placement = device if variables_device is None else _device_function(device,
                                                                              variables_device)
        with tf1.name_scope(scope) as name_scope, tf1.device(placement), \
                tf1.variable_scope(tf1.get_variable_scope(), reuse=True if index else None), \
                _building(CloneContext(index, len(devices), device, name_scope)):
            outputs = model_fn(*args)
        if index:
            # Only clone 0 updates the moving statistics (module docstring).
            update_ops[:] = before
        built.append(Clone(outputs, name_scope, device, index))
    return built


def split_batch(tensors, num_clones):
    """Splits each of ``tensors`` along axis 0 into ``num_clones`` equal parts.

    Returns one tuple per clone. The batch size must be a multiple of
    ``num_clones`` (checked when the graph runs, by ``tf.split``).
    """
    checks.integer(num_clones, 'num_clones', minimum=1)
    parts = [tf.split(t, num_clones, axis=0, name='split_for_clones') for t in tensors]
    return [tuple(p[i] for p in parts) for i in range(num_clones)]


def total_clone_loss(clones, add_regularization_losses=True):
    """Sum over clones of (clone's losses / number of clones), plus regularization once.

    Its gradient is the clones' averaged gradient (module docstring). Each
    clone must have added at least one loss to ``tf.compat.v1.losses``.
    """
    num = len(clones)
    parts = []
    for clone in clones:
        losses = tf1.losses.get_losses(scope=clone.scope)
        if not losses:
            raise ValueError(f'clone {clone.index} (scope {clone.scope!r}) added no loss; '
                             'accepted: a model_fn that calls a tf.compat.v1.losses function')
        with tf.device(clone.device), tf1.name_scope(clone.scope):
            clone_loss = tf.add_n(losses)
            parts.append(clone_loss / num if num > 1 else clone_loss)
    if add_regularization_losses:
        parts.extend(tf1.losses.get_regularization_losses())
    return tf.add_n(parts, name='total_loss')


def drop_clone_summaries(clones):
    """Removes the summaries built inside clones other than clone 0 from ``SUMMARIES``."""
    others = tuple(c.scope for c in clones if c.index)
    if not others:
        return
    summaries = tf1.get_collection_ref(tf1.GraphKeys.SUMMARIES)
    summaries[:] = [s for s in summaries if not s.op.name.startswith(others)]


def build_classifier_clones(config, images, labels, num_classes, worker_device='',
                            variables_device='/device:CPU:0'):
    """``config.num_clones`` clones of ``config``'s network on equal parts of the batch.

    The fed batch holds ``num_clones * batch_size`` examples (slim: the
    batch size is per clone). Returns ``(logits, cross_entropy, total_loss)``:
    the logits of the whole batch in order, the clones' mean cross-entropy,
    and :func:`total_clone_loss`.
    """
    devices = clone_devices(config.num_clones, config.clone_on_cpu, worker_device)

    def model_fn(clone_images, clone_labels):
        with replica_scope(config, current_clone().index):
            logits, _ = config.build_logits(clone_images, num_classes, is_training=True,
                                            weight_decay=config.weight_decay,
                                            freeze_batch_norm=config.freeze_batch_norm,
                                            sync_batch_norm=config.sync_batch_norm)
        from slimnorm.train.optimization import classification_loss
        return logits, classification_loss(clone_labels, logits, num_classes,
                                           config.label_smoothing)

    with tf.device(worker_device or None):
        per_clone = split_batch([images, labels], config.num_clones)
    built = create_clones(model_fn, devices, per_clone, variables_device=variables_device)
    drop_clone_summaries(built)
    total_loss = total_clone_loss(built)
    logits = tf.concat([c.outputs[0] for c in built], axis=0, name='clone_logits')
    cross_entropy = tf.add_n([c.outputs[1] for c in built]) / len(built)
    return logits, cross_entropy, total_loss


def replica_scope(config, clone_index=0):
    """The ``slimnorm.replica_group`` of this worker's clone ``clone_index``.

    With ``config.sync_batch_norm`` every clone of every worker is one
    replica of the group (clone k of worker w is replica ``w * num_clones +
    k``), so batch norm reduces its statistics over the whole global batch;
    without it, nothing is entered.
    """
    if not config.sync_batch_norm:
        return contextlib.nullcontext()
    from slimnorm import replicas
    return replicas.replica_group(size=config.num_replicas,
                                  replica=config.task_index * config.num_clones + clone_index)
