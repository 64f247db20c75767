"""slimnorm train --sync_batch_norm with the cluster flags: 2 worker processes on 127.0.0.1.

The independent check is the one-device network on the two workers' batches
together: from the chief's checkpoint of step 1, one training step of that
network must land where the cluster's step 2 landed (weights, gamma/beta,
moving statistics, momentum slots). Then a full run evaluates within 2
points of the one-process run with the same global batch, also after a
worker was killed (the chief stops with one line after the time-out, and
both restarted workers resume from the chief's last checkpoint).

Every process is started through LocalCluster, whose context manager kills
what still runs, also when a test fails; every wait is bounded.
The runs end cleanly: no traceback, and every worker reports the chief's
final checkpoint.
"""
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from test_cluster import TaskLogs
from test_sync_batch_norm_training import _step

from slimnorm import precision
from slimnorm.train import inputs
from slimnorm.train.config import EvalConfig, TrainConfig
from slimnorm.train.local_cluster import LocalCluster

from script_helpers import digits_run, script_env

CLUSTER_SECS = 300


def _run(train_dir, args, logs, during=None):
    with LocalCluster(0, 2, ['--train_dir', train_dir, '--sync_batch_norm'] + args,
                      log=logs, env=script_env()) as local:
        local.start()
        if during:
            during(local)
        codes = local.wait(CLUSTER_SECS)
    assert codes == {'worker 0': 0, 'worker 1': 0}, (codes, logs.dump())


def _worker_batches(config, step):
    """What each of 2 workers feeds at ``step`` (its shard, its batch order)."""
    batches = []
    for shard in range(2):
        with tf.Graph().as_default():
            data = inputs.train_inputs(config, num_shards=2, shard_index=shard)
            fed = data.feed(step)
            batches.append((fed[data.images], fed[data.labels]))
    return batches


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def test_a_cluster_step_lands_where_one_device_lands_on_both_workers_batches(tmp_path):
    train_dir = str(tmp_path)
    config = TrainConfig(batch_size=8, max_steps=2, save_every_steps=1, max_to_keep=5,
                         lr_schedule='fixed')
    args = ['--batch_size', 8, '--max_steps', 2, '--save_every_steps', 1,
            '--learning_rate_decay_type', 'fixed', '--cluster_timeout_secs', 60]
    logs = TaskLogs()
    _run(train_dir, args, logs)
    assert 'Traceback' not in logs.dump(), logs.dump()
    final = os.path.join(train_dir, 'model.ckpt-2')
    assert tf.train.latest_checkpoint(train_dir) == final
    for worker in ('worker 0', 'worker 1'):
        assert logs.matching(worker, rf'^Done: step 2, checkpoint {re.escape(final)}$'), (
            logs.dump())
    start = _checkpoint_values(os.path.join(train_dir, 'model.ckpt-1'))
    cluster = _checkpoint_values(os.path.join(train_dir, 'model.ckpt-2'))
    (x0, y0), (x1, y1) = _worker_batches(config, step=1)
    _, whole = _step(config, np.concatenate([x0, x1]), np.concatenate([y0, y1]), start)
    assert sorted(whole) == sorted(cluster)
    moving = [n for n in whole if n.endswith(('moving_mean', 'moving_variance'))]
    assert len(moving) >= 4
    for name in whole:
        np.testing.assert_allclose(cluster[name], whole[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    # Worker 0's batch alone (unsynchronized statistics) ends elsewhere: the check can fail.
    _, alone = _step(config, x0, y0, start)
    name = 'SmallConvNet/conv1/BatchNorm/moving_variance'
    assert not np.allclose(alone[name], whole[name], rtol=1e-4, atol=1e-6)


def test_a_killed_worker_stops_the_chief_and_both_resume_to_one_process_accuracy(tmp_path):
    from slimnorm.train import evaluation
    train_dir = str(tmp_path)
    logs = TaskLogs()
    args = ['--batch_size', 32, '--max_steps', 300, '--save_every_steps', 50,
            '--log_every_steps', 25, '--cluster_timeout_secs', 20]
    with LocalCluster(0, 2, ['--train_dir', train_dir, '--sync_batch_norm'] + args,
                      log=logs, env=script_env()) as local:
        local.start()
        logs.wait_for('worker 0', r'Saved .*model\.ckpt-50', 180)
        local.kill('worker 1')
        codes = local.wait(120, names=['worker 0'])
        assert codes == {'worker 0': 1}, logs.dump()
        assert logs.matching('worker 0', r'Another worker stopped answering.*restart every '
                                          r'worker to resume'), logs.dump()
        assert not logs.matching('worker 0', 'Traceback'), logs.dump()
        # The line names the cause, not TensorFlow's generic first line.
        assert not logs.matching('worker 0', r'Error: Graph execution error'), logs.dump()
        resumed_from = tf.train.latest_checkpoint(train_dir)
        local.start('worker', 0)
        local.start('worker', 1)
        codes = local.wait(CLUSTER_SECS)
    assert codes == {'worker 0': 0, 'worker 1': 0}, (codes, logs.dump())
    assert logs.matching('worker 0', f'Restored {resumed_from}'), logs.dump()
    metrics = evaluation.evaluate(EvalConfig(), train_dir)
    assert metrics['global_step'] == 300, metrics
    config, _ = digits_run()  # one process, batch 64 = 2 workers x 32, 300 steps
    reference = evaluation.evaluate(EvalConfig(), config.train_dir)['top1']
    assert abs(metrics['top1'] - reference) <= 0.02, (metrics, reference, logs.dump())


@pytest.mark.parametrize('fields, phrase', [
    ({'ps_hosts': '127.0.0.1:2222'}, 'workers only'),
    ({'replicas_to_aggregate': 1}, 'replicas_to_aggregate=1'),
])
def test_the_cluster_flags_that_cannot_synchronize_are_refused(fields, phrase):
    fields = dict({'sync_batch_norm': True, 'worker_hosts': '127.0.0.1:2223,127.0.0.1:2224',
                   'job_name': 'worker'}, **fields)
    with pytest.raises(ValueError, match=phrase):
        TrainConfig(**fields).check()


def test_a_workers_only_cluster_needs_sync_batch_norm():
    fields = {'worker_hosts': '127.0.0.1:2223', 'job_name': 'worker'}
    assert TrainConfig(sync_batch_norm=True, **fields).check()
    with pytest.raises(ValueError, match='at least one ps'):
        TrainConfig(**fields).check()


@pytest.mark.skipif(precision.unavailable_reason('bfloat16') is not None,
                    reason=f"bfloat16: {precision.unavailable_reason('bfloat16')}")
def test_a_bfloat16_cluster_step_synchronizes_and_keeps_float32_variables(tmp_path):
    # The same two-worker step as above under --mixed_precision bfloat16: the moving
    # statistics are the synchronized ones (within bfloat16 rounding of the one-device
    # float32 step on both workers' batches, far from worker 0's batch alone), and the
    # checkpoint stays float32.
    train_dir = str(tmp_path)
    config = TrainConfig(batch_size=8, max_steps=2, save_every_steps=1, max_to_keep=5,
                         lr_schedule='fixed')
    args = ['--batch_size', 8, '--max_steps', 2, '--save_every_steps', 1,
            '--learning_rate_decay_type', 'fixed', '--cluster_timeout_secs', 60,
            '--mixed_precision', 'bfloat16']
    logs = TaskLogs()
    _run(train_dir, args, logs)
    assert 'Traceback' not in logs.dump(), logs.dump()
    final = os.path.join(train_dir, 'model.ckpt-2')
    for worker in ('worker 0', 'worker 1'):
        assert logs.matching(worker, rf'^Done: step 2, checkpoint {re.escape(final)}$'), (
            logs.dump())
    cluster = _checkpoint_values(final)
    assert {name: value.dtype for name, value in cluster.items()
            if name != 'global_step'} == {name: np.float32 for name in cluster
                                          if name != 'global_step'}
    start = _checkpoint_values(os.path.join(train_dir, 'model.ckpt-1'))
    (x0, y0), (x1, y1) = _worker_batches(config, step=1)
    _, whole = _step(config, np.concatenate([x0, x1]), np.concatenate([y0, y1]), start)
    _, alone = _step(config, x0, y0, start)
    moving = [n for n in whole if n.endswith('moving_variance')]
    assert len(moving) >= 2
    nears = []
    for name in moving:
        nears.append(np.abs(cluster[name] - whole[name]).max())
        far = np.abs(alone[name] - whole[name]).max()
        assert nears[-1] < 0.25 * far, (name, nears[-1], far)
    # The rewrite ran on the workers: a float32 cluster lands within 6e-8 (measured).
    assert max(nears) > 1e-6, nears
