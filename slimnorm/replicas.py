"""Replica groups and the cross-replica sum that synchronized batch norm reduces with.

A replica is one copy of the model that trains on its own part of the
global batch: a clone on one device of a process, or a worker process of a
cluster, or both (clone k of worker w). Synchronized layers need to know
how many replicas there are and which one is being built; whoever builds
the replicas says so by entering a group around each replica's model:

    for k, device in enumerate(devices):              # clones in one process
        with tf.device(device), slimnorm.replica_group(size=len(devices), replica=k):
            model_fn(...)

    # a worker process of a cluster of W workers with C clones each
    with slimnorm.replica_group(size=W * C, replica=w * C + k): ...

The reduction is TensorFlow's collective all-reduce (CollectiveReduceV2),
which needs no coordinator: every replica builds the same op with the same
group key (from the group's name and size) and instance key (from the
layer's variable scope, its call number in the replica and its role), and
the runtime matches them up by key across devices and processes. Nothing is
exchanged to agree on the keys, so every replica must build the same layers
in the same order, which clones and workers of one model do.

Sessions: `session_config` sets what a run with collectives needs: a step
time-out and, for several processes (workers), the collective group leader
(in the ConfigProto of their `tf.distribute.Server` and Session). Clones in
one process need a session with that many devices.

A replica that never comes (a dead worker, a clone or worker that built
another model) makes the others' collectives wait. Two ways to fail instead
of hanging:
  * the step time-out of `session_config(timeout_seconds=...)` cancels the
    step (DeadlineExceededError "Timed out waiting for notification");
    inside `explain_timeouts()` it is re-raised as a TimeoutError that says
    what probably happened. Free, and the default;
  * `replica_group(timeout_seconds=...)` puts the time-out on each collective
    op: the error then names the layer's `.../CrossReplicaSum` node ("Collective
    has timed out"). TensorFlow keeps a sleeping thread per collective and
    step for that long, so thousands of threads pile up in training: meant
    for tests and for finding which layer waits.
After either, the process's collective executor is aborted: restart the run.
"""

import contextlib
import threading
import weakref
import zlib
from typing import NamedTuple

import tensorflow as tf

from slimnorm import checks

DEFAULT_STEP_TIMEOUT_SECONDS = 600.0
DEFAULT_LEADER = "/job:worker/replica:0/task:0"
# Keys are int32; ours lie in [2**30, 2**31 - 1), away from the small keys that
# TensorFlow's distribution strategies count up from.
_KEY_BASE = 2 ** 30


class ReplicaGroup(NamedTuple):
    """Who reduces with whom: `size` replicas, of which this one is `replica`."""
    size: int
    replica: int
    name: str
    timeout_seconds: float  # per collective op; 0: none (the step time-out applies)

    @property
    def group_key(self):
        return _stable_key("group", self.name, self.size)


_STATE = threading.local()


def current_group():
    """The innermost `replica_group` being built, or None outside any."""
    stack = getattr(_STATE, "groups", ())
    return stack[-1] if stack else None


@contextlib.contextmanager
def replica_group(size, replica, name="slimnorm", timeout_seconds=None):
    """Layers built inside reduce their statistics over `size` replicas.

    Args:
      size: number of replicas in the group (all clones of all workers).
      replica: index of the replica being built, in [0, size); only used to
        number the layers it builds, so each replica must have its own.
      name: tells two groups of the same size apart (their group keys differ).
      timeout_seconds: None, or how long each collective op waits for the
        other replicas before failing with DeadlineExceededError; costly in
        training (module docstring): prefer the step time-out of
        `session_config`.

    Yields the `ReplicaGroup`.
    """
    size = checks.integer(size, "size", minimum=1)
    replica = checks.integer(replica, "replica", minimum=0)
    if replica >= size:
        raise ValueError("replica=%d is out of range for a group of size=%d; accepted are "
                         "0 to %d." % (replica, size, size - 1))
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string, got %r." % (name,))
    timeout = 0.0 if timeout_seconds is None else checks.positive(timeout_seconds,
                                                                   "timeout_seconds")
    group = ReplicaGroup(size, replica, name, timeout)
    stack = getattr(_STATE, "groups", ())
    _STATE.groups = stack + (group,)
    try:
        yield group
    finally:
        _STATE.groups = stack


def session_config(config=None, timeout_seconds=DEFAULT_STEP_TIMEOUT_SECONDS, leader=None):
    """A ConfigProto (a copy of `config`) for a run with synchronized layers.

    Args:
      timeout_seconds: the step time-out (`operation_timeout_in_ms`): a step
        whose collectives wait longer for a missing replica fails.
      leader: for several processes, the task that resolves group
        membership, e.g. '/job:worker/replica:0/task:0' (DEFAULT_LEADER);
        every worker passes the config to its `tf.distribute.Server` and
        Session. None for clones in one process.
    """
    proto = tf.compat.v1.ConfigProto()
    if config is not None:
        proto.CopyFrom(config)
    proto.operation_timeout_in_ms = int(1000 * checks.positive(timeout_seconds,
                                                                "timeout_seconds"))
    if leader is not None:
        proto.experimental.collective_group_leader = leader
    return proto


@contextlib.contextmanager
def explain_timeouts(timeout_seconds=DEFAULT_STEP_TIMEOUT_SECONDS):
    """Re-raises a step time-out of session.run inside as a TimeoutError saying why.

    Wrap the training loop's session.run calls when the model has
    synchronized layers; `timeout_seconds` is the one of `session_config`.
    """
    try:
        yield
    except tf.errors.DeadlineExceededError as error:
        raise TimeoutError(
            "a training step timed out (the step time-out is %g s; a replica_group may also "
            "give its collectives one of their own). With synchronized batch norm (sync_replicas=True) this is most often a replica that never reached "
            "its collectives: a worker that is down or not started, a clone or worker that "
            "built another model, or replicas that disagree on the group size. TensorFlow "
            "said: %s" % (timeout_seconds, _without_traceback(error.message))) from error


def _without_traceback(message):
    """The lines of a TensorFlow error message that are not its Python stack."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith("File ")
            and "most recent call last" not in line]
    return " ".join(kept)


def _stable_key(*parts):
    """An int32 key from `parts`, equal in every process (unlike Python's hash)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return _KEY_BASE + zlib.crc32(text) % (_KEY_BASE - 1)


# graph -> {(group, replica, scope): calls so far} and {instance key: owner}.
_CALLS = weakref.WeakKeyDictionary()
_OWNERS = weakref.WeakKeyDictionary()


def layer_key(group, scope_name):
    """Instance-key seed of one call of a synchronized layer in the current graph.

    The n-th call of the layer under `scope_name` in a replica gets the same
    seed in every replica, and different calls (a reused layer) differ.
    """
    graph = tf.compat.v1.get_default_graph()
    calls = _CALLS.setdefault(graph, {})
    slot = (group.name, group.size, group.replica, scope_name)
    call = calls.get(slot, 0)
    calls[slot] = call + 1
    return "%s|%s|%d" % (group.name, scope_name, call)


def _instance_key(group, seed, role):
    """The instance key of `seed`'s collective `role`; refuses a collision in the graph."""
    key = _stable_key("instance", seed, role)
    owners = _OWNERS.setdefault(tf.compat.v1.get_default_graph(), {})
    owner = owners.setdefault((group.name, group.size, group.replica, key), (seed, role))
    if owner != (seed, role):
        raise ValueError("instance key %d of %s collides with that of %s; accepted: layers "
                         "whose scopes hash apart (rename one scope)." % (key, (seed, role),
                                                                          owner))
    return key


def all_reduce(x, group, seed, role):
    """Sum of `x` over the replicas of `group` (no gradient: see sync_batch_norm).

    `seed` comes from `layer_key`; `role` tells the collectives of one layer
    call apart (e.g. 'forward', 'backward0'). A group of one replica needs no
    collective.
    """
    if group.size == 1:
        return tf.identity(x)
    return tf.raw_ops.CollectiveReduceV2(
        input=x, group_size=group.size, group_key=group.group_key,
        instance_key=_instance_key(group, seed, role), ordering_token=[], merge_op="Add",
        final_op="Id", timeout_seconds=group.timeout_seconds, name="CrossReplicaSum")
