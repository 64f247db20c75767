"""Training helpers that make forgotten batch-norm updates loud.

Batch norm in training mode puts its moving-statistics updates in the
``UPDATE_OPS`` collection instead of running them itself. A train op that
does not depend on them trains fine and evaluates at chance, because the
moving mean and variance stay at their initial 0 and 1 (TensorFlow issues
11965, 7469, 1122). tf-slim's ``create_train_op`` only logged a warning when
``update_ops`` missed some of the collection; here:

- :func:`create_train_op` always makes the train op depend on every op in
  ``UPDATE_OPS`` and refuses an ``update_ops`` list that leaves some out;
- :func:`check_update_ops` checks any train op, however it was built, by
  walking its inputs, and raises :class:`MissingUpdateOpsError` naming the
  update ops it would never run;
- :func:`make_saver` saves every global variable (the moving statistics are
  not trainable, so a Saver over ``trainable_variables()`` drops them) and
  refuses a variable list that leaves out a model variable;
- :func:`variables_to_restore` builds the restore map of an evaluation, with
  the moving-average shadow variables of slim's ``eval_image_classifier`` and
  scopes left out for partial restores.
"""
import tensorflow as tf

from slimnorm import checks

tf1 = tf.compat.v1


class MissingUpdateOpsError(ValueError):
    """A train op does not run some of the ops in ``UPDATE_OPS``.

    ``missing`` holds the names of the update ops it would never run.
    """

    def __init__(self, message, missing=()):
        super().__init__(message)
        self.missing = list(missing)


class IncompleteSaverError(ValueError):
    """A Saver's variable list leaves out model variables."""


def create_train_op(total_loss, optimizer, global_step=None, update_ops=None,
                    variables_to_train=None, clip_gradient_norm=0,
                    summarize_gradients=False, check_numerics=True,
                    colocate_gradients_with_ops=False):
    """Returns a tensor that runs one training step and evaluates to the loss.

    Like tf-slim's ``create_train_op``, with these differences:

    - every op in the graph's ``UPDATE_OPS`` runs before the gradients are
      computed; an explicit ``update_ops`` that leaves out some of them is an
      error (slim only warned), since leaving out batch-norm updates is what
      makes evaluation accuracy drop to chance. Ops you really do not want
      run must be taken out of the collection itself;
    - ``global_step=None`` means ``get_or_create_global_step()`` (slim had a
      sentinel for that and used None for "no global step");
    - ``clip_gradient_norm > 0`` clips by the global norm of all gradients
      (slim wanted a ``transform_grads_fn`` for it).

    Args:
      total_loss: scalar float tensor, usually ``tf.losses.get_total_loss()``.
      optimizer: a ``tf.compat.v1.train.Optimizer``.
      global_step: the step variable to increment; None: the graph's.
      update_ops: ops to run before each step; None: ``UPDATE_OPS``.
      variables_to_train: None: all trainable variables.
      clip_gradient_norm: 0 for no clipping, else the maximal global norm.
      summarize_gradients: add histogram and norm summaries per gradient.
      check_numerics: fail the step when the loss is inf or NaN.
      colocate_gradients_with_ops: compute each gradient on the device of
        its forward op (slim's flag; what clones on several devices need).
    """
    if not isinstance(total_loss, tf.Tensor) or total_loss.shape.rank not in (0, None):
        raise ValueError(f'total_loss={total_loss!r} must be a scalar tensor')
    if not isinstance(optimizer, tf1.train.Optimizer):
        raise ValueError(f'optimizer={optimizer!r} must be a tf.compat.v1.train.Optimizer '
                         '(e.g. MomentumOptimizer, AdamOptimizer)')
    checks.at_least(clip_gradient_norm, 0, 'clip_gradient_norm')
    graph = total_loss.graph
    with graph.as_default():
        if global_step is None:
            global_step = tf1.train.get_or_create_global_step()
        collected = _as_ops(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))
        if update_ops is None:
            update_ops = collected
        else:
            update_ops = _as_ops(update_ops)
            left_out = [op for op in collected if op not in set(update_ops)]
            if left_out:
                names = ', '.join(op.name for op in left_out)
                raise MissingUpdateOpsError(
                    f'update_ops leaves out {len(left_out)} of the {len(collected)} ops in '
                    f'UPDATE_OPS: {names}; pass update_ops=None to run them all, or remove '
                    'the ops you do not want from the collection itself', left_out)
        if variables_to_train is None:
            variables_to_train = tf1.trainable_variables()
        if not variables_to_train:
            raise ValueError(f'variables_to_train={variables_to_train!r}: '
                             'there is no variable to train')

        if update_ops:
            # An update op inside a tf.cond branch lives in a function graph:
            # depend on the op of this graph that runs that function.
            callers = _FunctionCallers(graph)
            dependencies = _as_ops(op for update in update_ops
                                   for op in callers.outer_ops(update))
            with tf.control_dependencies(dependencies):
                barrier = tf.no_op(name='update_barrier')
            with tf.control_dependencies([barrier]):
                total_loss = tf.identity(total_loss)

        grads_and_vars = optimizer.compute_gradients(
            total_loss, variables_to_train,
            colocate_gradients_with_ops=colocate_gradients_with_ops)
        if clip_gradient_norm > 0:
            with tf1.name_scope('clip_grads'):
                grads = [g for g, _ in grads_and_vars]
                clipped, _ = tf.clip_by_global_norm(grads, clip_gradient_norm)
                grads_and_vars = list(zip(clipped, [v for _, v in grads_and_vars]))
        if summarize_gradients:
            with tf1.name_scope('summarize_grads'):
                _add_gradient_summaries(grads_and_vars)
        grad_updates = optimizer.apply_gradients(grads_and_vars, global_step=global_step)

        with tf1.name_scope('train_op'):
            if check_numerics:
                total_loss = tf.debugging.check_numerics(total_loss, 'LossTensor is inf or nan')
            with tf.control_dependencies([grad_updates]):
                train_op = tf.identity(total_loss, name='train_op')
        if train_op not in tf1.get_collection(tf1.GraphKeys.TRAIN_OP):
            tf1.add_to_collection(tf1.GraphKeys.TRAIN_OP, train_op)
    return train_op


def _add_gradient_summaries(grads_and_vars):
    for grad, var in grads_and_vars:
        if grad is None:
            continue
        if isinstance(grad, tf.IndexedSlices):
            grad = grad.values
        name = var.op.name
        tf1.summary.histogram(name + '/gradient', grad)
        tf1.summary.scalar(name + '/gradient_norm', tf.linalg.global_norm([grad]))


def check_update_ops(train_op, graph=None):
    """Raises :class:`MissingUpdateOpsError` unless ``train_op`` runs all UPDATE_OPS.

    Walks the data and control inputs of ``train_op`` transitively. An update
    op created inside a function body (a ``tf.cond`` branch, a while loop) is
    found through the op that calls the function: if ``train_op`` depends on
    the ``If``/``While`` op, it counts as depending on the update ops inside.

    Args:
      train_op: the tensor or operation run at each training step.
      graph: whose ``UPDATE_OPS`` to check; default: ``train_op``'s graph.

    Returns:
      The list of update operations checked (empty when there are none).
    """
    if isinstance(train_op, (tf.Tensor, tf.Variable)):
        train_op = train_op.op
    if not isinstance(train_op, tf.Operation):
        raise ValueError(f'train_op={train_op!r} must be a tf.Tensor or tf.Operation')
    graph = graph or train_op.graph
    update_ops = _as_ops(graph.get_collection(tf1.GraphKeys.UPDATE_OPS))
    if not update_ops:
        return []
    reached = _ancestors(train_op)
    callers = _FunctionCallers(graph)
    missing = []
    for op in update_ops:
        representatives = callers.outer_ops(op)
        if not any(rep in reached for rep in representatives):
            missing.append(op)
    if missing:
        names = ', '.join(callers.describe(op) for op in missing)
        raise MissingUpdateOpsError(
            f'train_op {train_op.name!r} does not run {len(missing)} of the '
            f'{len(update_ops)} ops in UPDATE_OPS, so the moving statistics they update '
            f'would stay at their initial values: {names}; build the train op with '
            'slimnorm.training.create_train_op, or under tf.control_dependencies('
            'tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS))',
            [op.name for op in missing])
    return update_ops


def _as_ops(items):
    """Operations of a list of ops, tensors and (unread) variables, in order."""
    ops, seen = [], set()
    for item in items:
        op = item if isinstance(item, tf.Operation) else getattr(item, 'op', None)
        if not isinstance(op, tf.Operation):
            raise ValueError(f'update op {item!r} is not an operation, tensor or variable')
        if op not in seen:
            seen.add(op)
            ops.append(op)
    return ops


def _ancestors(op):
    """``op`` and every op it depends on through data or control inputs."""
    reached, stack = {op}, [op]
    while stack:
        current = stack.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent not in reached:
                reached.add(parent)
                stack.append(parent)
    return reached


class _FunctionCallers:
    """Maps ops inside function graphs to the ops of ``graph`` that call them."""

    def __init__(self, graph):
        self._graph = graph
        self._by_graph = {}

    def _callers_in(self, outer):
        """{function name: [ops of ``outer`` that call it]}."""
        if outer not in self._by_graph:
            index = {}
            for op in outer.get_operations():
                for name in _called_functions(op):
                    index.setdefault(name, []).append(op)
            self._by_graph[outer] = index
        return self._by_graph[outer]

    def outer_ops(self, op):
        """The ops of ``self._graph`` through which ``op`` runs (``[op]`` if in it)."""
        frontier = [op]
        while frontier and frontier[0].graph is not self._graph:
            inner = frontier[0].graph
            outer = getattr(inner, 'outer_graph', None)
            if outer is None:
                return []  # an unrelated graph: nothing in ours can run it
            callers = self._callers_in(outer).get(inner.name, [])
            frontier = callers
        return frontier

    def describe(self, op):
        """``op``'s name, with the function and the calling op it runs in."""
        where, current = [], op
        while current.graph is not self._graph:
            inner = current.graph
            outer = getattr(inner, 'outer_graph', None)
            callers = self._callers_in(outer).get(inner.name, []) if outer else []
            if not callers:
                where.append(f'function {inner.name}, called by no op of the graph')
                break
            where.append(f'function {inner.name} run by op {callers[0].name}')
            current = callers[0]
        return op.name + (f' (in {"; ".join(where)})' if where else '')


def _called_functions(op):
    """Names of the functions ``op`` runs through its attributes: tf.cond's
    If (then_branch, else_branch), Case (branches), While (cond, body), calls (f)."""
    names = []
    for value in op.node_def.attr.values():
        if value.HasField('func'):
            names.append(value.func.name)
        elif value.HasField('list'):
            names.extend(f.name for f in value.list.func)
    return names


def make_saver(var_list=None, max_to_keep=5, **saver_kwargs):
    """A Saver over all global variables, moving statistics included.

    ``var_list`` defaults to ``tf.compat.v1.global_variables()``; an explicit
    one must hold every model variable (``MODEL_VARIABLES``), so that a list of
    trainable variables only, which drops the batch-norm moving mean and
    variance, is refused with their names. Relative paths are saved so a
    training directory can be moved.
    """
    if var_list is None:
        var_list = tf1.global_variables()
    check_saver_var_list(var_list)
    saver_kwargs.setdefault('save_relative_paths', True)
    return tf1.train.Saver(var_list=var_list, max_to_keep=max_to_keep, **saver_kwargs)


def check_saver_var_list(var_list, graph=None):
    """Raises :class:`IncompleteSaverError` if ``var_list`` misses model variables."""
    graph = graph or tf1.get_default_graph()
    if isinstance(var_list, dict):
        saved = {_var_key(v) for v in var_list.values()}
    else:
        saved = {_var_key(v) for v in var_list}
    model_vars = graph.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
    missing = [v.op.name for v in model_vars if _var_key(v) not in saved]
    if missing:
        raise IncompleteSaverError(
            f'var_list leaves out {len(missing)} model variables, which checkpoints '
            f'would then lack: {", ".join(missing)}; save tf.compat.v1.global_variables() '
            '(the moving statistics are not trainable variables)')


def _var_key(var):
    return var.op.name if hasattr(var, 'op') else str(var)


def variables_to_restore(exclude_scopes=(), moving_average_decay=None):
    """The ``{checkpoint name: variable}`` map an evaluation restores.

    With ``moving_average_decay``, every model variable is restored from its
    ``ExponentialMovingAverage`` shadow (``<name>/ExponentialMovingAverage``),
    as slim's ``eval_image_classifier`` did; other global variables, such as
    the global step, are restored as themselves. Variables whose name starts
    with one of ``exclude_scopes`` are left out (they must be initialized
    before restoring), for partial restores.
    """
    if isinstance(exclude_scopes, str):
        raise ValueError(f'exclude_scopes={exclude_scopes!r} must be a list of scope '
                         'names, not one string')
    scopes = [s.strip().rstrip('/') for s in exclude_scopes if s.strip()]
    if checks.optional_fraction(moving_average_decay, 'moving_average_decay') is not None:
        ema = tf1.train.ExponentialMovingAverage(moving_average_decay)
        mapping = ema.variables_to_restore(tf1.model_variables() or tf1.trainable_variables())
    else:
        mapping = {v.op.name: v for v in tf1.global_variables()}
    return {name: var for name, var in mapping.items()
            if not any(var.op.name == s or var.op.name.startswith(s + '/') for s in scopes)}
