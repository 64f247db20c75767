"""One task of a parameter-server cluster: a ps that serves, or a worker that trains.

    slimnorm train --ps_hosts 127.0.0.1:2222 --worker_hosts 127.0.0.1:2223,127.0.0.1:2224 \\
        --job_name worker --task_index 0 --train_dir runs/dist --sync_replicas

(With ``--sync_batch_norm`` a cluster has no ps: ``slimnorm.train.collective``.)

Built on TensorFlow's own runtime: ``tf.distribute.Server`` (gRPC),
``replica_device_setter`` (variables round-robin on the ps tasks, the rest
on this worker), ``SyncReplicasOptimizer`` and ``MonitoredTrainingSession``.

What each task does:

- ps: starts its server and serves until every worker has said it is done
  (``slimnorm.train.cluster.serve_until_workers_done``), then returns;
- chief (worker 0): removes half-written checkpoint files, initializes the
  variables or restores the latest checkpoint of ``train_dir`` (also after it
  was killed and restarted: it resumes from its last checkpoint), saves
  checkpoints (the same atomic ``Saver.save`` as the one-process loop: the
  ``checkpoint`` state file names a checkpoint only once it is complete) and
  writes summaries;
- other workers: wait (at most ``cluster_timeout_secs``) until the chief has
  initialized the variables, then train; a worker killed and restarted
  rejoins the same way. They write nothing to ``train_dir``.

Data: worker ``i`` of ``n`` reads shard ``i`` of ``n``
(``slimnorm.train.inputs.train_inputs``): the in-memory examples ``i, i+n,
...`` in a ``BatchSchedule`` order seeded by ``seed + i`` and indexed by the
global step, or its share of the TFRecord files.

Synchronous training (``sync_replicas``): each step averages the gradients
of ``replicas_to_aggregate`` workers (default: all), gradients computed on
stale variables are dropped, and the chief's queue runner applies the
update. SyncReplicasOptimizer counts gradients, not workers: a worker that
is late (or restarting) is replaced by another worker's next gradient, so
the chief waits for every worker's server before its first step. The batch-norm updates run through ``create_train_op``'s update
barrier, before the gradients, on every worker. Putting ``minimize`` under
``control_dependencies(UPDATE_OPS)`` instead would also make the chief's
aggregation ops (run by its queue runner, without a feed) depend on the
placeholders: "You must feed a value for placeholder". tests/test_cluster.py
trains with batch norm in sync mode to show the barrier works. When the
chief stops, its queue runner closes the token queue: a worker still
waiting for a token gets OutOfRangeError, which MonitoredTrainingSession
takes as the end of training.

Asynchronous training: every worker applies its own gradients as soon as
they are computed; the global step counts all workers' steps.

SIGINT/SIGTERM stop a worker after its current step (the chief saves a
checkpoint); such a worker does not tell the ps tasks it is done, since it
is expected back.
"""
import os
import time

import numpy as np
import tensorflow as tf

from slimnorm.train import cluster, loop, saved_run
from slimnorm.train import config as run_config
from slimnorm.train import inputs as train_inputs

tf1 = tf.compat.v1

# How long a closing session waits for its queue-runner threads. The sync
# chief's runner waits for gradients that stopped workers will not send;
# TensorFlow's default (120 s) would only delay the exit.
STOP_GRACE_SECS = 5


def run_task(config, plan, log=loop._print):
    """Runs this process's task of ``plan``; returns train()'s dict (ps: a short one)."""
    session_config = config.session_config()
    server = cluster.start_server(plan, session_config)
    log(f'{plan.job_name} {plan.task_index}: serving on {plan.address} '
        f'(cluster ps={",".join(plan.ps_hosts)} worker={",".join(plan.worker_hosts)})')
    if plan.job_name == 'ps':
        cluster.serve_until_workers_done(server, plan, log)
        log(f'ps {plan.task_index}: every worker is done, exiting')
        return {'job_name': 'ps', 'task_index': plan.task_index}
    cluster.wait_for_tasks(plan.ps_hosts, config.cluster_timeout_secs, 'ps task')
    result = train_worker(config, plan, server, log)
    if not result['interrupted']:
        # An interrupted worker is expected back: the ps tasks keep serving.
        _share_final_checkpoint(config, plan, server, result, log)
        cluster.signal_done(server, plan, config.cluster_timeout_secs)
    return result


def _share_final_checkpoint(config, plan, server, result, log):
    """The chief hands its final checkpoint to the other workers, who report it too."""
    if plan.is_chief:
        cluster.announce_checkpoint(server, plan, result['checkpoint'] or '',
                                    config.cluster_timeout_secs)
        return
    checkpoint = cluster.receive_checkpoint(server, plan, config.cluster_timeout_secs)
    if checkpoint is None:
        log(f'worker {plan.task_index}: the chief did not report its final checkpoint within '
            f'{config.cluster_timeout_secs:g} s')
    result['checkpoint'] = checkpoint or None
    log(f'worker {plan.task_index}: the chief\'s final checkpoint is {result["checkpoint"]}')


def _check_train_dir(config):
    """The chief's checks of its train_dir before the graph: nothing is written yet."""
    if tf.train.latest_checkpoint(config.train_dir):
        loop._check_resumable(config)


def _prepare_train_dir(config, graph, data, latest, log):
    """Once the graph is built and found to fit ``latest``: the train_dir and its run_config."""
    if latest:
        saved_run.check_resumed_variables(graph, latest, config.train_dir)
        for path in loop.remove_incomplete_checkpoints(config.train_dir):
            log(f'Removed {path} (left by an interrupted save)')
    os.makedirs(config.train_dir, exist_ok=True)
    run_config.write_run_config(config.train_dir, config,
                                saved_run.run_facts(config, data.images, data.num_classes))


def _build(config, plan, start_step):
    """The worker's graph: variables on the ps tasks, the rest on this worker."""
    worker_device = plan.task_device
    setter = tf1.train.replica_device_setter(cluster=plan.cluster_spec(),
                                             worker_device=worker_device)
    wrap = None
    aggregate = config.replicas_to_aggregate or plan.num_workers
    if config.sync_replicas:
        def wrap(optimizer):
            return tf1.train.SyncReplicasOptimizer(
                optimizer, replicas_to_aggregate=aggregate, total_num_replicas=plan.num_workers)
    with tf1.device(setter):
        data = train_inputs.train_inputs(config, start_step, num_shards=plan.num_workers,
                                         shard_index=plan.task_index)
        model = loop.build_train_graph(config, data.images, data.labels, data.num_classes,
                                       worker_device=worker_device, variables_device=setter,
                                       wrap_optimizer=wrap,
                                       examples_per_epoch=train_inputs.epoch_size(config, data),
                                       replicas_to_aggregate=aggregate)
        hooks = ([tf1.train.StopAtStepHook(last_step=config.max_steps)]
                 if config.max_steps else [])
        if config.sync_replicas:
            _end_chief_queue_runner_quietly(model.optimizer)
            hooks.append(model.optimizer.make_session_run_hook(plan.is_chief))
        # Global variables only: the local ones are this worker's own.
        uninitialized = (None if plan.is_chief
                         else tf1.report_uninitialized_variables(tf1.global_variables()))
    return data, model, hooks, uninitialized


def _end_chief_queue_runner_quietly(optimizer):
    """Makes the sync chief's queue runner end without a traceback when its session closes.

    Its thread waits in the gradient accumulators for gradients that the
    stopped workers never send; closing the session cancels the wait, and
    the QueueRunner hands the CancelledError (not one of its "queue closed"
    errors) to a coordinator that has already joined, which raises it in the
    thread: a CancelledError traceback after a run that succeeded. Counting
    CancelledError as the queue closing ends the thread quietly; every other
    error still stops training.
    """
    runner = optimizer.get_chief_queue_runner()
    optimizer._chief_queue_runner = tf1.train.QueueRunner(
        queue=runner.queue, enqueue_ops=runner.enqueue_ops, close_op=runner.close_op,
        cancel_op=runner.cancel_op,
        queue_closed_exception_types=(tf.errors.OutOfRangeError, tf.errors.CancelledError))


def _checkpoint_every(config):
    """MonitoredTrainingSession's (steps, secs); a final checkpoint is always saved."""
    if config.save_every_steps:
        return config.save_every_steps, None
    return None, config.save_every_secs or 10 ** 9


def _session_config(config, plan):
    session = config.session_config()
    session.device_filters.extend(['/job:ps', plan.task_device])
    # Bounds every step: a worker waiting on a dead chief's tokens gets an error.
    session.operation_timeout_in_ms = int(config.cluster_timeout_secs * 1000)
    return session


def train_worker(config, plan, server, log=loop._print):
    """Trains as worker ``plan.task_index`` until the global step reaches max_steps."""
    latest = None
    if plan.is_chief:
        _check_train_dir(config)
        latest = tf.train.latest_checkpoint(config.train_dir)
        log(f'worker 0: restoring {latest}' if latest else 'worker 0: initializing the variables')
    graph = tf.Graph()
    with graph.as_default():
        data, model, hooks, uninitialized = _build(config, plan, loop._saved_step(latest))
        scaffold = tf1.train.Scaffold(saver=model.saver, summary_op=model.summary)
    if plan.is_chief:
        _prepare_train_dir(config, graph, data, latest, log)
    steps, secs = _checkpoint_every(config)
    session_config = _session_config(config, plan)
    if plan.is_chief and config.sync_replicas:
        # Else the chief alone fills every step's quota of gradients.
        cluster.wait_for_tasks(plan.worker_hosts, config.cluster_timeout_secs, 'worker')
    elif not plan.is_chief:
        _wait_until_initialized(server, graph, uninitialized, session_config, config, plan)
    started = time.time()
    result = {'loss': None, 'train_accuracy': None, 'examples_per_sec': None,
              'job_name': 'worker', 'task_index': plan.task_index}
    window = []
    examples_per_step = config.batch_size * config.num_clones
    try:
        with graph.as_default(), tf1.train.MonitoredTrainingSession(
                master=server.target, is_chief=plan.is_chief, checkpoint_dir=config.train_dir,
                scaffold=scaffold, hooks=hooks, save_checkpoint_steps=steps,
                save_checkpoint_secs=secs, save_summaries_steps=None,
                save_summaries_secs=config.save_summaries_secs or None,
                log_step_count_steps=0, config=session_config,
                max_wait_secs=config.cluster_timeout_secs, save_graph_def=False,
                stop_grace_period_secs=STOP_GRACE_SECS) as sess, \
                loop._StopRequest() as stop:
            # run_step_fn: a plain run, without the hooks (whose summary needs a feed).
            step = start_step = int(sess.run_step_fn(
                lambda step_context: step_context.session.run(model.global_step)))
            log(f'worker {plan.task_index}: training from global step {step} to '
                f'{config.max_steps or "no limit"} ({"sync" if config.sync_replicas else "async"}, '
                f'shard {plan.task_index} of {plan.num_workers}: {data.description})')
            window_start = time.time()
            while not sess.should_stop() and stop.signal_name is None:
                loss, accuracy, step = sess.run(
                    [model.train_op, model.accuracy, model.step_after], data.feed(step))
                window.append((loss, accuracy))
                if len(window) == config.log_every_steps:
                    elapsed = time.time() - window_start
                    result.update(loss=float(np.mean([w[0] for w in window])),
                                  train_accuracy=float(np.mean([w[1] for w in window])),
                                  examples_per_sec=len(window) * examples_per_step / elapsed)
                    log(f'worker {plan.task_index}: global step {step}/{config.max_steps or "-"}  '
                        f'loss {result["loss"]:.4f}  train_acc {result["train_accuracy"]:.3f}  '
                        f'{result["examples_per_sec"]:.0f} ex/s')
                    window, window_start = [], time.time()
    except tf.errors.DeadlineExceededError as err:
        raise cluster.ClusterTimeoutError(
            f'worker {plan.task_index}: a step did not finish within '
            f'{config.cluster_timeout_secs:g} s (a ps task or, in sync mode, another worker '
            f'stopped answering): {err.message.splitlines()[0]}') from None
    checkpoint = tf.train.latest_checkpoint(config.train_dir) if plan.is_chief else None
    result.update(global_step=int(step), start_step=start_step, checkpoint=checkpoint,
                  interrupted=stop.signal_name, seconds=time.time() - started)
    log(f'worker {plan.task_index}: stopped at global step {step}'
        + (f', checkpoint {checkpoint}' if checkpoint else ''))
    return result


def _wait_until_initialized(server, graph, uninitialized, session_config, config, plan):
    """Non-chief: polls until the chief has initialized or restored every variable.

    MonitoredTrainingSession would check every 30 s only; this answers within
    half a second, and fails with a clear message after cluster_timeout_secs.
    """
    deadline = time.monotonic() + config.cluster_timeout_secs
    with tf1.Session(server.target, graph=graph, config=session_config) as sess:
        while True:
            names = sess.run(uninitialized)
            if not len(names):
                return
            if time.monotonic() > deadline:
                raise cluster.ClusterTimeoutError(
                    f'worker {plan.task_index}: the chief (worker 0, {plan.worker_hosts[0]}) '
                    f'did not initialize the variables within {config.cluster_timeout_secs:g} s '
                    f'({len(names)} uninitialized, e.g. {names[0].decode()}); is it running?')
            time.sleep(0.5)
