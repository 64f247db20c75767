"""Session-based training of a nets_factory network: graph, loop, checkpoints.

    from slimnorm.train.config import TrainConfig
    from slimnorm.train.loop import train
    result = train(TrainConfig(dataset='digits', max_steps=600, train_dir='runs/d'))

What the loop guarantees:

- the train op runs every UPDATE_OPS op (``slimnorm.training.create_train_op``)
  and ``check_update_ops`` has verified it before the first step;
- checkpoints ``<train_dir>/model.ckpt-<step>`` hold every global variable:
  weights, batch-norm moving statistics, optimizer slots, the global step;
- a run restarted on the same ``train_dir`` resumes from the latest
  checkpoint, at its global step (the in-memory sets: on the same batches
  it would have seen, ``slimnorm.data.datasets.BatchSchedule``);
- SIGINT/SIGTERM finish the current step, save a checkpoint and return;
- ``tf.train.latest_checkpoint`` only ever names a complete checkpoint:
  ``Saver.save`` first runs the save op, which writes the data file under a
  temporary ``.tempstate`` name and then the index, and only then rewrites
  the ``checkpoint`` state file, through a temporary file and a rename
  (``file_io.atomic_write_string_to_file``). A process killed at any moment
  leaves the state file naming the previous complete checkpoint
  (tests/test_train_script.py kills one mid-run; docs/training_notes.md has
  the manual kill trials).
  The next run deletes the half-written files (``remove_incomplete_checkpoints``).
  No ``.meta`` files are written (the graph is rebuilt from code, and a
  ``.meta`` is written after the state file, so it could be left truncated);
  TensorBoard gets the graph from the event file.

Input (`slimnorm.train.inputs`): the in-memory sets are fed as numpy
batches through ``feed_dict``, drawn by ``slimnorm.data.datasets.BatchSchedule``
(the batch order is a function of ``(seed, step)``, so a resumed run sees
exactly the batches it would have seen); ``dataset='tfrecord'`` reads
research/slim-format TFRecords through a tf.data pipeline in the graph (a
resumed run restarts at its saved step, on other batches). A bad record stops
training with :class:`BadRecordError` after a checkpoint of the current step
is saved; with ``skip_corrupt_records`` bad records are dropped and counted.

Fine-tuning (`slimnorm.train.warm_start`): a train_dir without a checkpoint
starts from ``checkpoint_path`` when given, and ``trainable_scopes`` limits
what is trained.
"""
import dataclasses
import os
import re
import signal
import threading
import time

import numpy as np
import tensorflow as tf

from slimnorm import precision
from slimnorm.train import clones, optimization, saved_run, warm_start
from slimnorm.train import config as run_config
from slimnorm.train import inputs as train_inputs
from slimnorm.train import train_op as training

tf1 = tf.compat.v1

CHECKPOINT_BASENAME = 'model.ckpt'


@dataclasses.dataclass
class TrainGraph:
    """The tensors the loop runs."""
    images: tf.Tensor
    labels: tf.Tensor
    train_op: tf.Tensor
    step_after: tf.Tensor
    accuracy: tf.Tensor
    learning_rate: tf.Tensor
    global_step: tf.Variable
    summary: tf.Tensor
    saver: tf1.train.Saver
    update_op_count: int
    optimizer: tf1.train.Optimizer = None


def build_train_graph(config, images, labels, num_classes, worker_device='',
                      variables_device='/device:CPU:0', wrap_optimizer=None,
                      examples_per_epoch=None, replicas_to_aggregate=1):
    """Builds the training graph on the batch ``images``, ``labels``; returns a TrainGraph.

    With ``config.num_clones > 1`` the network is cloned on the devices of
    ``slimnorm.train.clones`` (prefixed by ``worker_device``), its variables
    on ``variables_device``. ``wrap_optimizer`` (e.g. a
    SyncReplicasOptimizer constructor) wraps the optimizer.
    ``examples_per_epoch`` (the training split's size) and
    ``replicas_to_aggregate`` turn epochs into steps for the learning rate
    (`slimnorm.train.optimization`).
    """
    tf1.set_random_seed(config.seed)
    num_clones = getattr(config, 'num_clones', 1)
    if num_clones > 1:
        logits, cross_entropy, total_loss = clones.build_classifier_clones(
            config, images, labels, num_classes, worker_device, variables_device)
    else:
        with clones.replica_scope(config):
            logits, _ = config.build_logits(images, num_classes, is_training=True,
                                            weight_decay=config.weight_decay,
                                            freeze_batch_norm=config.freeze_batch_norm,
                                            sync_batch_norm=config.sync_batch_norm)
        cross_entropy = optimization.classification_loss(labels, logits, num_classes,
                                                         config.label_smoothing)
        # Cross-entropy plus every regularization loss (the weight decay).
        total_loss = tf1.losses.get_total_loss(add_regularization_losses=True)
    if getattr(config, 'quantize_delay', -1) >= 0:
        # As research/slim: after the loss, before the moving averages and the
        # optimizer (slimnorm.quantize folds batch norm, adds fake quantization).
        from slimnorm import quantize
        quantize.create_training_graph(quant_delay=config.quantize_delay)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))
    global_step = tf1.train.get_or_create_global_step()
    learning_rate = optimization.learning_rate(config, global_step, examples_per_epoch,
                                               replicas_to_aggregate)
    if config.moving_average_decay:
        # As slim's train_image_classifier: shadow every model variable; the
        # averaging runs with the batch-norm updates, before each step.
        ema = tf1.train.ExponentialMovingAverage(config.moving_average_decay, global_step)
        tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, ema.apply(tf1.model_variables()))
    # float16: dynamic loss scaling inside the optimizer (slimnorm.precision).
    optimizer = precision.loss_scale_optimizer(optimization.make_optimizer(config, learning_rate),
                                               config.mixed_precision)
    if wrap_optimizer is not None:
        optimizer = wrap_optimizer(optimizer)
    train_op = training.create_train_op(
        total_loss, optimizer, global_step=global_step,
        variables_to_train=warm_start.variables_to_train(config.trainable_scopes),
        clip_gradient_norm=config.clip_gradient_norm,
        colocate_gradients_with_ops=num_clones > 1)
    update_ops = training.check_update_ops(train_op)
    # Read after the step's increment (fetching global_step beside train_op
    # could read it before).
    with tf.control_dependencies([train_op]):
        step_after = tf.identity(global_step.read_value(), name='global_step_after')

    tf1.summary.scalar('losses/cross_entropy', cross_entropy)
    tf1.summary.scalar('losses/total_loss', total_loss)
    tf1.summary.scalar('accuracy/train_batch', accuracy)
    tf1.summary.scalar('learning_rate', learning_rate)
    for var in tf1.global_variables():
        if var.op.name.endswith(('/moving_mean', '/moving_variance')):
            # Not the variable's own name: the summary op would be renamed '_1'.
            tf1.summary.histogram('moving_statistics/' + var.op.name, var)
    return TrainGraph(images, labels, train_op, step_after, accuracy, learning_rate, global_step,
                      tf1.summary.merge_all(),
                      training.make_saver(max_to_keep=config.max_to_keep), len(update_ops),
                      optimizer)


class TrainingDivergedError(RuntimeError):
    """The loss became inf or NaN; nothing was saved after it did."""


class BadRecordError(RuntimeError):
    """A TFRecord could not be read; a checkpoint of the step before it was saved."""


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        # Handlers can only be set from the main thread; elsewhere (a thread
        # of a larger program) signals keep their default behaviour.
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_resumable(config):
    saved = run_config.read_run_config(config.train_dir)
    if saved is None:
        return
    different = {name: (saved.get(name), value)
                 for name, value in config.graph_fields().items() if saved.get(name) != value}
    if (saved.get('quantize_delay', -1) >= 0) != config.quantized:
        # Quantization-aware runs hold the range variables; the delay may change.
        different['quantize_delay'] = (saved.get('quantize_delay', -1), config.quantize_delay)
    if different:
        listed = ', '.join(f'{name}={new!r} (was {old!r})'
                           for name, (old, new) in sorted(different.items()))
        raise ValueError(f'train_dir={config.train_dir!r} holds a run of another network: '
                         f'{listed}; accepted: a new train_dir or the same settings')


def _format_eta(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def _print(line):
    print(line, flush=True)  # progress must show through pipes (| tee) as it happens


def train(config, log=_print, worker=None):
    """Trains (or resumes) ``config``; returns a dict summarising the run.

    Keys: global_step, start_step, checkpoint (path of the last one),
    interrupted (signal name or None), loss and train_accuracy (means over
    the last logging window), examples_per_sec, seconds.

    ``worker``: None for one process, or this process's
    ``slimnorm.train.collective.CollectiveWorker`` in a workers-only
    cluster: it trains on its shard of the data, its gradients are
    all-reduced, it starts from the chief's variables, and only the chief
    reads and writes ``train_dir``.
    """
    config.check()
    chief = worker is None or worker.is_chief
    latest = None
    if chief:
        # Nothing is written to train_dir until the graph is built and a
        # checkpoint already there is found to hold its variables.
        latest = (tf.train.latest_checkpoint(config.train_dir)
                  if os.path.isdir(config.train_dir) else None)
        if latest:
            _check_resumable(config)
    graph = tf.Graph()
    with graph.as_default(), tf.device(worker.device if worker else None):
        shard = (dict(num_shards=worker.plan.num_workers, shard_index=worker.plan.task_index)
                 if worker else {})
        data = train_inputs.train_inputs(config, start_step=_saved_step(latest), **shard)
        placement = (dict(worker_device=worker.device, variables_device=worker.variables_device,
                          wrap_optimizer=worker.wrap_optimizer) if worker else {})
        model = build_train_graph(config, data.images, data.labels, data.num_classes,
                                  examples_per_epoch=train_inputs.epoch_size(config, data),
                                  **placement)
        init = tf1.global_variables_initializer()
        broadcast = worker.broadcast_op(tf1.global_variables()) if worker else None
        share = worker.checkpoint_share_op() if worker else None
        warm = None
        if config.checkpoint_path and not latest:
            warm = warm_start.warm_start_fn(config.checkpoint_path,
                                            config.checkpoint_exclude_scopes,
                                            config.ignore_missing_vars, log)
    graph.finalize()
    if chief:
        if latest:
            saved_run.check_resumed_variables(graph, latest, config.train_dir)
        os.makedirs(config.train_dir, exist_ok=True)
        run_config.write_run_config(config.train_dir, config,
                                    saved_run.run_facts(config, data.images, data.num_classes))
    skips = train_inputs.SkipCounter() if data.positions is not None else None
    # slim's batch_size is per clone: each step takes num_clones batches.
    examples_per_step = config.batch_size * config.num_clones
    started = time.time()
    with tf1.Session(worker.target if worker else '', graph=graph,
                     config=worker.session_config if worker else config.session_config()) as sess, \
            _StopRequest() as stop:
        writer = tf1.summary.FileWriter(config.train_dir, graph) if chief else None
        if latest:
            model.saver.restore(sess, latest)
            # Keep max_to_keep counting the checkpoints of earlier processes.
            state = tf1.train.get_checkpoint_state(config.train_dir)
            model.saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
            log(f'Restored {latest}')
            for path in remove_incomplete_checkpoints(config.train_dir):
                log(f'Removed {path} (left by an interrupted save)')
        else:
            sess.run(init)
            if warm:
                warm(sess)
        if broadcast is not None:
            sess.run(broadcast)
        step = start_step = int(sess.run(model.global_step))
        log(f'Training {config.model} ({config.normalizer}) on {data.description}, '
            f'from step {step} '
            f'to {config.max_steps or "no limit"}, batch {config.batch_size}, '
            f'{config.optimizer} lr {config.learning_rate} {config.lr_schedule}; '
            'check_update_ops: '
            + (f'the train op runs all {model.update_op_count} UPDATE_OPS ops'
               if model.update_op_count else 'no moving statistics to update '
               '(UPDATE_OPS is empty: no batch norm, or batch norm frozen)'))
        checkpoint = latest
        last_save_time = window_start = time.time()
        last_summary_time = None
        window_loss, window_acc, window_steps = [], [], 0
        result = {'loss': None, 'train_accuracy': None, 'examples_per_sec': None}
        while _more_steps(config, step) and stop.signal_name is None:
            last = step + 1 == config.max_steps
            log_now = (step + 1) % config.log_every_steps == 0 or last
            summary_now = writer is not None and config.save_summaries_secs and (
                last or last_summary_time is None
                or time.time() - last_summary_time >= config.save_summaries_secs)
            fetches = [model.train_op, model.accuracy, model.step_after]
            if skips is not None:
                fetches.append(data.positions)
            if summary_now:
                fetches.append(model.summary)
            try:
                values = sess.run(fetches, data.feed(step))
            except tf.errors.OpError as err:
                if worker and isinstance(err, worker.FAILURES):
                    raise worker.failure(err, step, checkpoint) from None
                if not isinstance(err, (tf.errors.InvalidArgumentError, tf.errors.DataLossError)):
                    raise
                problem = train_inputs.input_error(err, data.source)
                if problem:
                    if chief and (checkpoint is None or not checkpoint.endswith(f'-{step}')):
                        checkpoint = _save(sess, model, config, step, log)
                    raise BadRecordError(
                        f'{problem}; stopped at step {step}, checkpoint {checkpoint} saved. '
                        'Fix or remove the record, or pass --skip_corrupt_records') from None
                if 'LossTensor is inf or nan' not in err.message:
                    raise
                raise TrainingDivergedError(
                    f'the loss became inf or NaN at step {step + 1} (lr '
                    f'{sess.run(model.learning_rate):.4g}); the last checkpoint is '
                    f'{checkpoint}. Lower --learning_rate, add --warmup_steps or '
                    '--clip_gradient_norm') from None
            step = int(values[2])
            if skips is not None:
                skips.add(values[3])
            window_loss.append(values[0])
            window_acc.append(values[1])
            window_steps += 1
            if summary_now:
                writer.add_summary(values[-1], step)
                last_summary_time = time.time()
            if log_now:
                elapsed = time.time() - window_start
                rate = window_steps * examples_per_step / max(elapsed, 1e-9)
                eta = ((config.max_steps - step) * examples_per_step / rate
                       if config.max_steps else None)
                result.update(loss=float(np.mean(window_loss)),
                              train_accuracy=float(np.mean(window_acc)), examples_per_sec=rate)
                log(f'step {step}/{config.max_steps or "-"}  loss {result["loss"]:.4f}  '
                    f'train_acc {result["train_accuracy"]:.3f}  '
                    f'lr {sess.run(model.learning_rate):.4g}  {rate:.0f} ex/s  '
                    + (f'epoch {step * examples_per_step / data.examples_per_epoch:.2f}  '
                       if data.examples_per_epoch else '')
                    + (f'skipped records {skips.skipped}  ' if skips is not None else '')
                    + (f'ETA {_format_eta(eta)}' if eta is not None else ''))
                window_start, window_loss, window_acc, window_steps = time.time(), [], [], 0
            due = ((config.save_every_steps and step % config.save_every_steps == 0)
                   or (config.save_every_secs and
                       time.time() - last_save_time >= config.save_every_secs))
            if chief and due and _more_steps(config, step):
                checkpoint = _save(sess, model, config, step, log)
                last_save_time = time.time()
        if chief and (checkpoint is None or not checkpoint.endswith(f'-{step}')):
            checkpoint = _save(sess, model, config, step, log)
        if share is not None and not stop.signal_name:
            checkpoint = worker.share_checkpoint(sess, share, checkpoint)
            if not chief:
                log(f'worker {worker.plan.task_index}: the chief\'s final checkpoint is '
                    f'{checkpoint}')
        if stop.signal_name:
            log(f'{stop.signal_name} received: stopped at step {step}')
        if writer:
            writer.close()
    result.update(global_step=step, start_step=start_step, checkpoint=checkpoint,
                  interrupted=stop.signal_name, seconds=time.time() - started,
                  skipped_records=skips.skipped if skips is not None else 0)
    return result


def _more_steps(config, step):
    """Whether training goes on after ``step`` (max_steps None: until a signal)."""
    return config.max_steps is None or step < config.max_steps


def _saved_step(checkpoint):
    """The global step stored in ``checkpoint`` (0 for None)."""
    if not checkpoint:
        return 0
    reader = tf.train.load_checkpoint(checkpoint)
    # Without one, it is no checkpoint of this loop: check_variables says so.
    return int(reader.get_tensor('global_step')) if reader.has_tensor('global_step') else 0


def remove_incomplete_checkpoints(train_dir):
    """Deletes the files of saves that a killed process left half-written.

    Those are Saver temporaries (``*.tempstate*``) and ``model.ckpt-N.data``
    files without their ``.index`` (written last), when the ``checkpoint``
    state file does not name them. Complete checkpoints are never touched.
    Returns the removed paths.
    """
    state = tf1.train.get_checkpoint_state(train_dir)
    named = {os.path.basename(p) for p in state.all_model_checkpoint_paths} if state else set()
    pattern = re.compile(re.escape(CHECKPOINT_BASENAME) + r'-(\d+)\.(index|data-\d+-of-\d+)(.*)$')
    removed = []
    for name in sorted(os.listdir(train_dir)):
        match = pattern.match(name)
        if not match:
            continue
        prefix = f'{CHECKPOINT_BASENAME}-{match.group(1)}'
        temporary = match.group(3).startswith('.tempstate')
        incomplete = not os.path.exists(os.path.join(train_dir, prefix + '.index'))
        if prefix not in named and (temporary or incomplete):
            path = os.path.join(train_dir, name)
            os.remove(path)
            removed.append(path)
    return removed


def _save(sess, model, config, step, log):
    path = model.saver.save(sess, os.path.join(config.train_dir, CHECKPOINT_BASENAME),
                            global_step=step, write_meta_graph=False)
    log(f'Saved {path}')
    return path
