"""The cluster of a distributed run: who is who, how the processes meet, when ps tasks stop.

A cluster is research/slim's and TensorFlow 1's: ``ps`` tasks hold the
variables, ``worker`` tasks run the training steps, worker 0 is the chief.
With ``--sync_batch_norm`` it has workers only (``slimnorm.train.collective``).
It is given either by flags::

    --ps_hosts 10.0.0.1:2222 --worker_hosts 10.0.0.2:2222,10.0.0.3:2222 \\
    --job_name worker --task_index 1

or by the standard ``TF_CONFIG`` environment variable (used when
``--job_name`` is not given)::

    {"cluster": {"ps": ["10.0.0.1:2222"], "worker": ["10.0.0.2:2222", ...]},
     "task": {"type": "worker", "index": 1}}

A ``"chief"`` job in TF_CONFIG becomes worker 0 and the workers follow it.

What this module adds to TensorFlow's ``ClusterSpec``/``Server``:

- checks of the flags before TensorFlow is imported (:func:`check_cluster_fields`);
- bounded waits: :func:`wait_for_tasks` polls the TCP ports of the tasks a
  process needs and raises :class:`ClusterTimeoutError` naming those that did
  not answer, instead of TensorFlow's endless "CreateSession still waiting";
- every worker reports the chief's final checkpoint: the chief enqueues its
  path once per other worker in a queue of ps 0 (:func:`announce_checkpoint`),
  which each of them dequeues before it says it is done
  (:func:`receive_checkpoint`);
- ps tasks that exit on their own: each ps task owns a queue
  (``done_queue_<i>``, on its own device, shared by name); every worker
  enqueues one token in every ps queue when it has finished, and a ps task
  returns from :func:`serve_until_workers_done` once it has one token per
  worker. A worker killed and restarted still finishes only once.

TensorFlow's gRPC servers are not authenticated: anyone who reaches the port
can run any op in the process. Run clusters on 127.0.0.1 or a private network.
"""
import dataclasses
import json
import os
import socket
import time

from slimnorm import checks

JOB_NAMES = ('ps', 'worker')
DONE_QUEUE_NAME = 'done_queue_{}'
# The chief's final checkpoint path, for the other workers to report (on ps 0).
CHECKPOINT_QUEUE_NAME = 'final_checkpoint_queue'


class ClusterTimeoutError(RuntimeError):
    """A task of the cluster did not answer within the allowed time."""


@dataclasses.dataclass(frozen=True)
class ClusterPlan:
    """The cluster's hosts and this process's place in it."""
    ps_hosts: tuple
    worker_hosts: tuple
    job_name: str
    task_index: int

    @property
    def num_workers(self):
        return len(self.worker_hosts)

    @property
    def is_chief(self):
        return self.job_name == 'worker' and self.task_index == 0

    @property
    def task_device(self):
        return f'/job:{self.job_name}/task:{self.task_index}'

    @property
    def address(self):
        hosts = self.ps_hosts if self.job_name == 'ps' else self.worker_hosts
        return hosts[self.task_index]

    def spec_dict(self):
        return {'ps': list(self.ps_hosts), 'worker': list(self.worker_hosts)}

    def cluster_spec(self):
        import tensorflow as tf
        return tf.compat.v1.train.ClusterSpec(self.spec_dict())


def parse_hosts(text, arg):
    """``'h1:p1,h2:p2'`` -> ``('h1:p1', 'h2:p2')``; a malformed entry -> ValueError."""
    if not isinstance(text, str):
        raise TypeError(f'{arg} must be a comma-separated string of host:port, got {text!r}')
    hosts = tuple(h.strip() for h in text.split(',') if h.strip())
    for host in hosts:
        name, _, port = host.rpartition(':')
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'{arg}={text!r}: {host!r} is not host:port; accepted: '
                             'comma-separated host:port entries, e.g. 127.0.0.1:2222')
    if len(set(hosts)) != len(hosts):
        raise ValueError(f'{arg}={text!r} names a host:port twice; accepted: distinct entries')
    return hosts


def check_cluster_fields(config):
    """Checks the cluster fields of a TrainConfig (TensorFlow-free)."""
    checks.one_of(config.job_name, ('',) + JOB_NAMES, 'job_name')
    checks.integer(config.task_index, 'task_index', minimum=0)
    checks.boolean(config.sync_replicas, 'sync_replicas')
    checks.integer(config.replicas_to_aggregate, 'replicas_to_aggregate', minimum=0)
    checks.positive(config.cluster_timeout_secs, 'cluster_timeout_secs')
    ps_hosts = parse_hosts(config.ps_hosts, 'ps_hosts')
    worker_hosts = parse_hosts(config.worker_hosts, 'worker_hosts')
    if not config.job_name:
        if ps_hosts or worker_hosts:
            raise ValueError(f'ps_hosts={config.ps_hosts!r} worker_hosts='
                             f'{config.worker_hosts!r} without job_name; accepted: '
                             '--job_name ps|worker with --task_index')
        return
    plan = ClusterPlan(ps_hosts, worker_hosts, config.job_name, config.task_index)
    check_plan(plan, require_ps=not getattr(config, 'sync_batch_norm', False))
    if getattr(config, 'checkpoint_path', None):
        raise ValueError(f'checkpoint_path={config.checkpoint_path!r} with job_name='
                         f'{config.job_name!r}: fine-tuning is not supported in a cluster yet; '
                         'accepted: fine-tune in one process, then resume that train_dir '
                         'in the cluster')
    if config.replicas_to_aggregate > plan.num_workers and config.sync_replicas:
        raise ValueError(f'replicas_to_aggregate={config.replicas_to_aggregate} with '
                         f'{plan.num_workers} workers; accepted: 0 (all workers) to '
                         f'{plan.num_workers}')


def check_scale_out(config):
    """Checks the clone, cluster and model_deploy fields of a TrainConfig."""
    checks.integer(config.num_clones, 'num_clones', minimum=1)
    checks.boolean(config.clone_on_cpu, 'clone_on_cpu')
    check_cluster_fields(config)
    check_deploy_fields(config)


def check_deploy_fields(config, environ=None):
    """research/slim's model_deploy flags against the cluster (TensorFlow-free).

    slim's ``--worker_replicas`` and ``--num_ps_tasks`` count the workers and
    ps tasks, ``--task`` is this worker's index (``task_index``) and
    ``--master`` the server its session talks to. slimnorm starts that
    server itself from the host lists, so the counts must match the host
    lists (1 and 0, slim's defaults, also mean "not given"), and ``master``
    may only name this task's own server, ``grpc://<its host:port>``.
    """
    checks.integer(config.worker_replicas, 'worker_replicas', minimum=1)
    checks.integer(config.num_ps_tasks, 'num_ps_tasks', minimum=0)
    if not isinstance(config.master, str):
        raise TypeError(f'master must be a string, got {config.master!r}')
    environ = os.environ if environ is None else environ
    if not config.job_name and environ.get('TF_CONFIG'):
        return  # checked again once TF_CONFIG has filled in the hosts
    how = ('slimnorm starts the cluster from --worker_hosts, --ps_hosts, --job_name and '
           '--task_index (or TF_CONFIG)')
    for name, hosts_name, unset in (('worker_replicas', 'worker_hosts', 1),
                                    ('num_ps_tasks', 'ps_hosts', 0)):
        count = len(parse_hosts(getattr(config, hosts_name), hosts_name))
        value = getattr(config, name)
        if value not in (unset, count):
            accepted = f'{unset} or {count}' if count else f'{unset} without a cluster'
            raise ValueError(f'{name}={value} with {count} host(s) in --{hosts_name}; '
                             f'accepted: {accepted} ({how})')
    if not config.master:
        return
    own = None
    if config.job_name:
        plan = ClusterPlan(parse_hosts(config.ps_hosts, 'ps_hosts'),
                           parse_hosts(config.worker_hosts, 'worker_hosts'),
                           config.job_name, config.task_index)
        own = f'grpc://{plan.address}' if plan.task_index < len(
            plan.ps_hosts if plan.job_name == 'ps' else plan.worker_hosts) else None
    if config.master != own:
        accepted = "'' or " + repr(own) if own else "''"
        raise ValueError(f'master={config.master!r}; accepted: {accepted}: the master is '
                         f'this task\'s own server ({how})')


def check_plan(plan, require_ps=True):
    """Raises ValueError unless ``plan`` has worker hosts, ps hosts if
    ``require_ps`` (workers-only clusters train with collectives, see
    ``slimnorm.train.collective``) and a task inside them."""
    if not plan.worker_hosts or (require_ps and not plan.ps_hosts):
        raise ValueError(f'ps_hosts={",".join(plan.ps_hosts)!r} worker_hosts='
                         f'{",".join(plan.worker_hosts)!r}; accepted: at least one ps and '
                         'one worker host:port (workers only with --sync_batch_norm)')
    count = len(plan.ps_hosts if plan.job_name == 'ps' else plan.worker_hosts)
    if plan.task_index >= count:
        raise ValueError(f'task_index={plan.task_index} for job_name={plan.job_name!r} with '
                         f'{count} hosts; accepted: 0 to {count - 1}')
    return plan


def parse_tf_config(text):
    """The ClusterPlan of a TF_CONFIG JSON string (ValueError if it is not one)."""
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config['cluster'], tf_config['task']
        job, index = task['type'], int(task['index'])
        chief = list(cluster.get('chief', []))
        workers = chief + list(cluster.get('worker', []))
        ps = list(cluster.get('ps', []))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f'TF_CONFIG={text!r} is not a cluster description ({err!r}); '
                         'accepted: {"cluster": {"ps": [...], "worker": [...]}, '
                         '"task": {"type": "worker", "index": 0}}') from None
    if job == 'chief':
        job, index = 'worker', 0
    elif job == 'worker':
        index += len(chief)
    checks.one_of(job, JOB_NAMES + ('chief',), 'TF_CONFIG task type')
    plan = ClusterPlan(parse_hosts(','.join(ps), 'TF_CONFIG ps'),
                       parse_hosts(','.join(workers), 'TF_CONFIG worker'), job, index)
    # Whether the run needs ps tasks is checked with its flags (check_cluster_fields).
    return check_plan(plan, require_ps=False)


def plan_from_config(config, environ=None):
    """The ClusterPlan of a TrainConfig (flags first, then TF_CONFIG), or None for one process."""
    environ = os.environ if environ is None else environ
    if config.job_name:
        return ClusterPlan(parse_hosts(config.ps_hosts, 'ps_hosts'),
                           parse_hosts(config.worker_hosts, 'worker_hosts'),
                           config.job_name, config.task_index)
    if environ.get('TF_CONFIG'):
        return parse_tf_config(environ['TF_CONFIG'])
    return None


def wait_for_tasks(addresses, timeout_secs, what='task'):
    """Polls until every ``host:port`` accepts a TCP connection; else ClusterTimeoutError."""
    deadline = time.monotonic() + timeout_secs
    waiting = list(addresses)
    while waiting:
        waiting = [a for a in waiting if not _accepts(a)]
        if waiting and time.monotonic() >= deadline:
            raise ClusterTimeoutError(
                f'{what} {", ".join(waiting)} did not answer within {timeout_secs:g} s; '
                'check that it was started, that the host:port is right and reachable '
                '(firewall), or raise --cluster_timeout_secs')
        if waiting:
            time.sleep(0.2)


def _accepts(address):
    host, _, port = address.rpartition(':')
    try:
        with socket.create_connection((host.strip('[]'), int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def start_server(plan, session_config=None):
    """Starts this task's gRPC server (``tf.distribute.Server``) and returns it."""
    import tensorflow as tf
    return tf.distribute.Server(plan.cluster_spec(), job_name=plan.job_name,
                                task_index=plan.task_index, config=session_config,
                                start=True)


def _done_queues(plan):
    import tensorflow as tf
    queues = []
    for index in range(len(plan.ps_hosts)):
        with tf.device(f'/job:ps/task:{index}'):
            queues.append(tf.queue.FIFOQueue(plan.num_workers, tf.int32,
                                             shared_name=DONE_QUEUE_NAME.format(index),
                                             name=DONE_QUEUE_NAME.format(index)))
    return queues


def serve_until_workers_done(server, plan, log=print):
    """For a ps task: serves until every worker has called :func:`signal_done`."""
    import tensorflow as tf
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        dequeue = _done_queues(plan)[plan.task_index].dequeue()
    config = tf1.ConfigProto(device_filters=[plan.task_device])
    with tf1.Session(server.target, graph=graph, config=config) as sess:
        for done in range(plan.num_workers):
            worker = sess.run(dequeue)
            log(f'ps {plan.task_index}: worker {worker} is done '
                f'({done + 1}/{plan.num_workers})')


def signal_done(server, plan, timeout_secs):
    """For a worker: tells every ps task that this worker has finished."""
    import tensorflow as tf
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        enqueues = [q.enqueue(plan.task_index) for q in _done_queues(plan)]
    config = tf1.ConfigProto(device_filters=['/job:ps', plan.task_device],
                             operation_timeout_in_ms=int(timeout_secs * 1000))
    with tf1.Session(server.target, graph=graph, config=config) as sess:
        sess.run(enqueues)


def _checkpoint_queue(plan):
    import tensorflow as tf
    with tf.device('/job:ps/task:0'):
        return tf.queue.FIFOQueue(max(plan.num_workers - 1, 1), tf.string,
                                  shared_name=CHECKPOINT_QUEUE_NAME, name=CHECKPOINT_QUEUE_NAME)


def _run_on_ps(server, plan, build, timeout_secs):
    """Runs the op ``build(queue)`` on the checkpoint queue of ps 0; returns its value."""
    import tensorflow as tf
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        op = build(_checkpoint_queue(plan))
    config = tf1.ConfigProto(device_filters=['/job:ps/task:0', plan.task_device],
                             operation_timeout_in_ms=int(timeout_secs * 1000))
    with tf1.Session(server.target, graph=graph, config=config) as sess:
        return sess.run(op)


def announce_checkpoint(server, plan, checkpoint, timeout_secs):
    """For the chief: hands its final checkpoint's path to each other worker (through ps 0)."""
    if plan.num_workers > 1:
        _run_on_ps(server, plan, lambda q: q.enqueue_many([[checkpoint] * (plan.num_workers - 1)]),
                   timeout_secs)


def receive_checkpoint(server, plan, timeout_secs):
    """For a non-chief worker: the chief's final checkpoint, or None after ``timeout_secs``."""
    import tensorflow as tf
    try:
        return _run_on_ps(server, plan, lambda q: q.dequeue(), timeout_secs).decode()
    except tf.errors.DeadlineExceededError:
        return None
