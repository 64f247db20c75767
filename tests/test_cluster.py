"""1 ps + 2 workers of slimnorm-train as processes on 127.0.0.1: sync and async training,
a worker and the chief killed (SIGKILL) and restarted, time-outs, flag checks.

Every process is started through slimnorm.train.local_cluster.LocalCluster,
whose context manager kills what still runs, also when a test fails; every
wait is bounded.
"""
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from slimnorm import precision
from slimnorm.train import cluster
from slimnorm.train.config import EvalConfig, TrainConfig
from slimnorm.train.local_cluster import LocalCluster, free_ports

from script_helpers import ROOT, digits_run, script_env

STEPS = 300
CLUSTER_SECS = 240
BASE_ARGS = ['--max_steps', STEPS, '--batch_size', 32, '--log_every_steps', 25,
             '--cluster_timeout_secs', 90]


class TaskLogs:
    """The output lines of every task, with bounded waits for a pattern."""

    def __init__(self):
        self.lines = {}
        self._lock = threading.Lock()

    def __call__(self, name, line):
        with self._lock:
            self.lines.setdefault(name, []).append(line)

    def matching(self, name, pattern):
        with self._lock:
            return [m for m in (re.search(pattern, line) for line in self.lines.get(name, []))
                    if m]

    def wait_for(self, name, pattern, timeout_secs):
        deadline = time.monotonic() + timeout_secs
        while not self.matching(name, pattern):
            if time.monotonic() > deadline:
                raise AssertionError(f'{name} never printed {pattern!r}; its output:\n'
                                     + '\n'.join(self.lines.get(name, [])[-30:]))
            time.sleep(0.2)

    def dump(self):
        return '\n'.join(f'[{n}] {line}' for n, lines in self.lines.items() for line in lines)


def _one_process_accuracy():
    from slimnorm.train import evaluation
    config, _ = digits_run()  # batch 64, 300 steps
    return evaluation.evaluate(EvalConfig(), config.train_dir)['top1']


def _run_cluster(train_dir, extra_args, during=None):
    """Runs 1 ps + 2 workers to the end; ``during(cluster, logs)`` acts meanwhile."""
    logs = TaskLogs()
    with LocalCluster(1, 2, ['--train_dir', train_dir] + BASE_ARGS + extra_args,
                      log=logs, env=script_env()) as local:
        local.start()
        if during:
            during(local, logs)
        codes = local.wait(CLUSTER_SECS)
    assert all(code == 0 for code in codes.values()), (codes, logs.dump())
    assert logs.matching('ps 0', 'every worker is done, exiting'), logs.dump()
    return logs


def _check_result(train_dir, logs, tolerance=0.02):
    from slimnorm.train import evaluation
    metrics = evaluation.evaluate(EvalConfig(), train_dir)
    assert metrics['global_step'] >= STEPS, metrics
    reference = _one_process_accuracy()
    assert abs(metrics['top1'] - reference) <= tolerance, (metrics, reference, logs.dump())
    assert not [f for f in os.listdir(train_dir) if 'tempstate' in f]


def test_sync_cluster_matches_one_process_accuracy_and_a_killed_worker_rejoins(tmp_path):
    def kill_and_restart_worker_1(local, logs):
        logs.wait_for('worker 1', r'global step \d+', 120)
        local.kill('worker 1')
        local.start('worker', 1)

    logs = _run_cluster(str(tmp_path), ['--sync_replicas'], kill_and_restart_worker_1)
    assert len(logs.matching('worker 1', 'training from global step')) == 2, logs.dump()
    assert logs.matching('worker 1', f'stopped at global step {STEPS}'), logs.dump()
    _check_result(str(tmp_path), logs)


def test_async_cluster_matches_one_process_accuracy_and_a_killed_chief_resumes(tmp_path):
    train_dir = str(tmp_path)
    killed_at = {}

    def kill_and_restart_chief(local, logs):
        deadline = time.monotonic() + 120
        while not tf.train.latest_checkpoint(train_dir):
            assert time.monotonic() < deadline, logs.dump()
            time.sleep(0.2)
        local.kill('worker 0')
        killed_at['checkpoint'] = tf.train.latest_checkpoint(train_dir)
        local.start('worker', 0)

    logs = _run_cluster(train_dir, ['--save_every_steps', 50], kill_and_restart_chief)
    restored = logs.matching('worker 0', r'restoring (\S+)')
    assert [m.group(1) for m in restored] == [killed_at['checkpoint']], logs.dump()
    # Asynchronous workers apply gradients of stale weights in the order the scheduler
    # gives them, so the result varies from run to run: 98.6-99.4 % in idle runs, 96.1 %
    # once under the full suite's load, against the one-process run's 98.6 %.
    _check_result(train_dir, logs, tolerance=0.04)


_NO_BF16 = precision.unavailable_reason('bfloat16')


@pytest.mark.parametrize('mixed_precision', [
    'none', pytest.param('bfloat16', marks=pytest.mark.skipif(
        _NO_BF16 is not None, reason=f'bfloat16: {_NO_BF16}'))])
def test_a_sync_cluster_ends_cleanly_and_every_worker_reports_the_final_checkpoint(
        tmp_path, mixed_precision):
    """No traceback in any task's output (the chief's queue runner used to end with a
    CancelledError traceback), and every worker names the chief's last checkpoint;
    under bfloat16 too, whose checkpoint stays float32."""
    train_dir = str(tmp_path)
    logs = TaskLogs()
    args = ['--train_dir', train_dir, '--max_number_of_steps', 20, '--batch_size', 16,
            '--log_every_n_steps', 10, '--cluster_timeout_secs', 90, '--sync_replicas',
            '--mixed_precision', mixed_precision]
    with LocalCluster(1, 2, args, log=logs, env=script_env()) as local:
        local.start()
        codes = local.wait(CLUSTER_SECS)
    assert all(code == 0 for code in codes.values()), (codes, logs.dump())
    assert 'Traceback' not in logs.dump(), logs.dump()
    final = tf.train.latest_checkpoint(train_dir)
    assert final == os.path.join(train_dir, 'model.ckpt-20'), logs.dump()
    for worker in ('worker 0', 'worker 1'):
        assert logs.matching(worker, rf'^Done: step 20, checkpoint {re.escape(final)}$'), (
            logs.dump())
    assert logs.matching('ps 0', '^Done: ps task 0$'), logs.dump()
    reader = tf.train.load_checkpoint(final)
    dtypes = reader.get_variable_to_dtype_map()
    assert {dtypes[name] for name in dtypes if name != 'global_step'} == {tf.float32}


def test_a_worker_without_its_ps_fails_with_a_clear_message_in_bounded_time():
    ps_port, worker_port = free_ports(2)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, '-m', 'slimnorm.cli.train', '--ps_hosts', f'127.0.0.1:{ps_port}',
         '--worker_hosts', f'127.0.0.1:{worker_port}', '--job_name', 'worker',
         '--task_index', '0', '--cluster_timeout_secs', '2', '--train_dir', '/nonexistent'],
        capture_output=True, text=True, env=script_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f'ps task 127.0.0.1:{ps_port} did not answer within 2 s' in done.stderr
    assert 'Traceback' not in done.stderr
    assert time.monotonic() - started < 100


def test_tf_config_gives_the_same_plan_as_the_flags():
    text = ('{"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"], "ps": ["h:4"]},'
            ' "task": {"type": "worker", "index": 1}}')
    plan = cluster.parse_tf_config(text)
    assert plan == cluster.ClusterPlan(('h:4',), ('h:1', 'h:2', 'h:3'), 'worker', 2)
    assert not plan.is_chief
    chief = cluster.parse_tf_config(text.replace('"worker", "index": 1', '"chief", "index": 0'))
    assert chief.is_chief and chief.task_device == '/job:worker/task:0'
    config = TrainConfig(ps_hosts='h:4', worker_hosts='h:1,h:2,h:3', job_name='worker',
                         task_index=2).check()
    assert cluster.plan_from_config(config, environ={}) == plan
    assert cluster.plan_from_config(TrainConfig(), environ={'TF_CONFIG': text}) == plan
    assert cluster.plan_from_config(TrainConfig(), environ={}) is None


@pytest.mark.parametrize('fields, message', [
    ({'job_name': 'chief'}, "job_name must be one of .*got 'chief'"),
    ({'ps_hosts': 'h:1', 'worker_hosts': 'h:2'}, 'without job_name'),
    ({'job_name': 'worker', 'ps_hosts': 'h:1', 'worker_hosts': 'h'}, "'h' is not host:port"),
    ({'job_name': 'worker', 'ps_hosts': 'h:1', 'worker_hosts': 'h:2,h:2'}, 'twice'),
    ({'job_name': 'worker', 'ps_hosts': '', 'worker_hosts': 'h:2'}, 'at least one ps'),
    ({'job_name': 'worker', 'ps_hosts': 'h:1', 'worker_hosts': 'h:2', 'task_index': 1},
     'task_index=1 for job_name=.worker. with 1 hosts'),
    ({'job_name': 'worker', 'ps_hosts': 'h:1', 'worker_hosts': 'h:2',
      'sync_replicas': True, 'replicas_to_aggregate': 3}, 'replicas_to_aggregate=3'),
    ({'job_name': 'worker', 'ps_hosts': 'h:1', 'worker_hosts': 'h:2',
      'checkpoint_path': '/tmp'}, 'not supported in a cluster'),
])
def test_bad_cluster_flags_are_refused_naming_the_value(fields, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**fields).check()


def test_workers_read_disjoint_shards_that_cover_the_training_set():
    from slimnorm.train import inputs
    shards = [inputs.shard_indices(100, 3, i) for i in range(3)]
    assert sorted(int(i) for shard in shards for i in shard) == list(range(100))
    config = TrainConfig(batch_size=4, num_clones=2)
    with tf.Graph().as_default():
        data = inputs.train_inputs(config, num_shards=3, shard_index=1)
        fed = data.feed(0)[data.images]
    train = config.load_data().train_images
    assert fed.shape[0] == 8  # batch_size per clone
    shard_rows = {row.tobytes() for row in train[1::3]}
    other_rows = {row.tobytes() for row in train[0::3]} | {row.tobytes() for row in train[2::3]}
    assert all(row.tobytes() in shard_rows - other_rows for row in fed)


def test_the_launcher_refuses_an_empty_cluster():
    from slimnorm.train import local_cluster
    with pytest.raises(SystemExit) as exit_info:
        local_cluster.main(['--num_workers', '0', '--', '--max_steps', '1'])
    assert exit_info.value.code == 2


def test_bad_tf_config_is_refused():
    with pytest.raises(ValueError, match='TF_CONFIG'):
        cluster.parse_tf_config('{"cluster": {}}')
