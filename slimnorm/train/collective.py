"""A cluster of workers only, in lockstep through collective ops: --sync_batch_norm across processes.

    slimnorm train --worker_hosts 127.0.0.1:2223,127.0.0.1:2224 --job_name worker \\
        --task_index 0 --train_dir runs/sync --sync_batch_norm

Synchronized batch norm all-reduces its statistics between the workers in
every training step (``slimnorm.replicas``). Such steps cannot share a
parameter server: TensorFlow gives the collective steps of all workers the
same step ids (the collectives need them to match up), and when one worker's
step ends, its master cleans that step id up on every task the step used, so
a ps serving two workers' steps would abort the slower worker's traffic
("Cleanup <step id>"). This is the layout of TensorFlow's
MultiWorkerMirroredStrategy instead, built on the same ops:

- every worker holds a replica of all variables (weights, batch-norm moving
  statistics, optimizer slots, global step) on its own device;
- each step, every worker computes the gradient of its own shard's loss,
  the gradients are averaged over the workers by one all-reduce
  (:class:`AllReduceGradients`), and every worker applies the same update,
  so the replicas stay equal: the all-reduced values are the same bits on
  every worker, and so are the synchronized batch-norm statistics;
- the chief (worker 0) restores the latest checkpoint of ``train_dir`` or
  initializes, then one all-reduce in which only the chief contributes
  copies its variables to every worker (:func:`broadcast_from_chief`); only
  the chief writes checkpoints and summaries (the one-process loop's atomic
  saves, ``slimnorm.train.loop``);
- all workers stop at the same global step, since every worker counts the
  same steps.

A worker that dies or is stopped stalls every other worker's next step; they
fail after ``cluster_timeout_secs`` with one line
(:class:`slimnorm.train.cluster.ClusterTimeoutError`), and since a process's
collective executor cannot be used after a failed collective, every worker
is restarted; the chief then resumes from its last checkpoint. TensorFlow's
gRPC servers are not authenticated: run such clusters on 127.0.0.1 or a
private network.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from slimnorm import replicas
from slimnorm.train import cluster

tf1 = tf.compat.v1

WORKERS_GROUP_NAME = 'slimnorm-workers'
# The longest checkpoint path the chief hands to the other workers at the end.
CHECKPOINT_PATH_BYTES = 4096


@dataclasses.dataclass
class CollectiveWorker:
    """This process's place in a workers-only cluster, as ``slimnorm.train.loop.train`` uses it."""
    plan: cluster.ClusterPlan
    target: str
    session_config: tf1.ConfigProto

    # How a step fails when another worker is gone.
    FAILURES = (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
                tf.errors.AbortedError, tf.errors.CancelledError)

    @property
    def is_chief(self):
        return self.plan.is_chief

    @property
    def device(self):
        return self.plan.task_device

    @property
    def variables_device(self):
        return f'{self.plan.task_device}/device:CPU:0'

    @property
    def group(self):
        """One member per worker, on its variables device."""
        return replicas.ReplicaGroup(self.plan.num_workers, self.plan.task_index,
                                     WORKERS_GROUP_NAME, 0.0)

    def wrap_optimizer(self, optimizer):
        return AllReduceGradients(optimizer, self.group, self.variables_device)

    def broadcast_op(self, variables):
        return broadcast_from_chief(variables, self.group, self.variables_device, self.is_chief)

    def checkpoint_share_op(self):
        """(placeholder, all-reduced sum): how the chief's final checkpoint path reaches all.

        The chief feeds the path's bytes, the others zeros; every worker gets
        the chief's bytes back (exact in float64).
        """
        with tf.device(self.variables_device), tf1.name_scope('share_checkpoint_path'):
            codes = tf1.placeholder(tf.float64, [CHECKPOINT_PATH_BYTES], name='codes')
            return codes, replicas.all_reduce(codes, self.group, 'checkpoint_path', 'sum')

    def share_checkpoint(self, sess, share, checkpoint):
        """The chief's final checkpoint path, on every worker (run by all at the same step).

        ``checkpoint``: the chief's; the others' is not used.
        """
        codes, total = share
        encoded = np.zeros([CHECKPOINT_PATH_BYTES], np.float64)
        if self.is_chief and checkpoint:
            data = np.frombuffer(checkpoint.encode('utf-8'), np.uint8)[:CHECKPOINT_PATH_BYTES]
            encoded[:len(data)] = data
        received = sess.run(total, {codes: encoded}).astype(np.uint8)
        path = received[received > 0].tobytes().decode('utf-8')
        return path if self.is_chief else (path or None)

    def failure(self, error, step, checkpoint):
        """The ClusterTimeoutError that a failed collective step ends the run with."""
        return cluster.ClusterTimeoutError(
            f'worker {self.plan.task_index}: step {step + 1} failed ({type(error).__name__}: '
            f'{_cause(error.message)}). Another worker stopped answering or failed: '
            'synchronized batch norm and the gradient all-reduce need every worker in every '
            f'step. The last checkpoint is {checkpoint}; restart every worker to resume from it')


def _cause(message, limit=200):
    """The line of a TensorFlow error message that says what happened."""
    generic = ('Graph execution error', 'Detected at node', 'File ', 'Traceback')
    lines = [line.strip() for line in (message or '').splitlines()]
    useful = [line for line in lines if line and not line.startswith(generic)]
    return (useful or ['no message'])[0][:limit]


def run_task(config, plan, log):
    """Trains as worker ``plan.task_index`` of a workers-only cluster; returns train()'s dict."""
    from slimnorm.train import loop
    server_config = config.session_config()
    server = cluster.start_server(plan, server_config)
    log(f'worker {plan.task_index}: serving on {plan.address} (workers '
        f'{",".join(plan.worker_hosts)}, synchronized batch norm, gradients all-reduced)')
    cluster.wait_for_tasks(plan.worker_hosts, config.cluster_timeout_secs, 'worker')
    session_config = tf1.ConfigProto()
    session_config.CopyFrom(server_config)
    # This task's devices only: the other workers are reached by the collectives.
    session_config.device_filters.append(plan.task_device)
    worker = CollectiveWorker(plan, server.target, session_config)
    result = loop.train(config, log, worker=worker)
    result.update(job_name='worker', task_index=plan.task_index)
    return result


class AllReduceGradients(tf1.train.Optimizer):
    """Averages the gradients over a replica group before ``optimizer`` applies them.

    All gradients travel in one float32 all-reduce (one collective per step,
    not one per variable). Clipping by global norm (``create_train_op``)
    then sees the averaged gradient, as in one process.
    """

    def __init__(self, optimizer, group, device):
        super().__init__(use_locking=False, name='AllReduceGradients')
        self._optimizer = optimizer
        self._group = group
        self._device = device

    def compute_gradients(self, *args, **kwargs):
        pairs = self._optimizer.compute_gradients(*args, **kwargs)
        present = [(g, v) for g, v in pairs if g is not None]
        if not present or self._group.size == 1:
            return pairs
        with tf.device(self._device), tf1.name_scope('all_reduce_gradients'):
            dense = [tf.convert_to_tensor(g) for g, _ in present]
            averaged = _all_reduce_packed(dense, self._group, 'gradients', tf.float32)
            averaged = [a / self._group.size for a in averaged]
        by_var = {id(v): a for (_, v), a in zip(present, averaged)}
        return [(by_var.get(id(v)), v) for _, v in pairs]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        return self._optimizer.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def get_slot(self, *args, **kwargs):
        return self._optimizer.get_slot(*args, **kwargs)

    def get_slot_names(self, *args, **kwargs):
        return self._optimizer.get_slot_names(*args, **kwargs)

    def variables(self):
        return self._optimizer.variables()


def broadcast_from_chief(variables, group, device, is_chief):
    """An op that sets ``variables`` on every worker to the chief's values.

    An all-reduce sum to which the other workers contribute zeros, in
    float64: exact for float16/32 values and integer steps below 2**53.
    """
    variables = [v for v in variables if v.dtype.base_dtype.is_floating
                 or v.dtype.base_dtype.is_integer]
    with tf.device(device), tf1.name_scope('broadcast_from_chief'):
        if is_chief:
            values = [v.read_value() for v in variables]
        else:
            values = [tf.zeros(v.shape, v.dtype.base_dtype) for v in variables]
        copied = _all_reduce_packed(values, group, 'broadcast', tf.float64)
        return tf.group(*[tf1.assign(v, value) for v, value in zip(variables, copied)])


def _all_reduce_packed(tensors, group, seed, dtype):
    """The sums over ``group`` of ``tensors`` (static shapes), through one all-reduce in ``dtype``."""
    flat = tf.concat([tf.reshape(tf.cast(t, dtype), [-1]) for t in tensors], axis=0)
    total = replicas.all_reduce(flat, group, seed, 'sum')
    sizes = [t.shape.num_elements() for t in tensors]
    parts = tf.split(total, sizes, axis=0)
    return [tf.cast(tf.reshape(p, t.shape), t.dtype) for p, t in zip(parts, tensors)]
