"""scripts/train.py (slimnorm-train) and slimnorm.train.loop: accuracy, checkpoints,
resume, signals, CLI errors."""
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from slimnorm import choices
from slimnorm.train import config as run_config

import script_helpers
from script_helpers import digits_run, run_script, start_script


def test_digits_run_reaches_95_percent_test_accuracy():
    from slimnorm.train import evaluation
    config, result = digits_run()
    assert result['global_step'] == script_helpers.DIGITS_STEPS
    assert result['checkpoint'].endswith(f'model.ckpt-{script_helpers.DIGITS_STEPS}')
    assert result['interrupted'] is None and result['start_step'] == 0
    metrics = evaluation.evaluate(run_config.EvalConfig(), config.train_dir)
    assert metrics['top1'] >= 0.95, metrics
    assert metrics['global_step'] == script_helpers.DIGITS_STEPS


def test_checkpoint_holds_every_variable_and_trained_moving_statistics():
    config, result = digits_run()
    reader = tf.train.load_checkpoint(result['checkpoint'])
    names = set(reader.get_variable_to_shape_map())
    means = sorted(n for n in names if n.endswith('/BatchNorm/moving_mean'))
    variances = sorted(n for n in names if n.endswith('/BatchNorm/moving_variance'))
    assert len(means) == len(variances) == 5  # one batch norm per conv layer
    for name in means:
        assert np.abs(reader.get_tensor(name)).max() > 1e-3, name  # initial value: 0
    for name in variances:
        assert np.abs(reader.get_tensor(name) - 1.0).max() > 1e-3, name  # initial value: 1
    assert reader.get_tensor('global_step') == script_helpers.DIGITS_STEPS
    assert 'SmallConvNet/conv1/weights/RMSProp' in names  # optimizer slots too
    assert 'SmallConvNet/conv1/BatchNorm/gamma' in names


def test_summaries_hold_loss_accuracy_learning_rate_and_moving_statistics():
    config, _ = digits_run()
    tags = set()
    for name in os.listdir(config.train_dir):
        if name.startswith('events.out.tfevents'):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(config.train_dir, name)):
                tags.update(value.tag for value in event.summary.value)
    for tag in ('losses/total_loss', 'losses/cross_entropy', 'accuracy/train_batch',
                'learning_rate', 'moving_statistics/SmallConvNet/conv1/BatchNorm/moving_mean',
                'moving_statistics/SmallConvNet/conv5/BatchNorm/moving_variance'):
        assert tag in tags, sorted(tags)


def test_a_finished_run_is_not_trained_further_and_another_network_is_refused():
    from slimnorm.train import loop
    config, result = digits_run()
    again = loop.train(config, log=lambda line: None)
    assert again['start_step'] == again['global_step'] == script_helpers.DIGITS_STEPS
    assert again['checkpoint'] == result['checkpoint']
    other = run_config.TrainConfig(**dict(vars(config), normalizer='group'))
    with pytest.raises(ValueError,
                       match="normalizer='group' \\(was 'batch'\\); accepted: a new train_dir"):
        loop.train(other, log=lambda line: None)


def test_sigkill_after_first_checkpoint_then_restart_resumes_and_finishes(tmp_path):
    train_dir = tmp_path / 'run'
    args = ['--train_dir', train_dir, '--max_steps', 200, '--save_every_steps', 10,
            '--log_every_steps', 50, '--max_to_keep', 3]
    process = start_script('train.py', *args, stderr_path=tmp_path / 'stderr1')
    deadline = time.time() + 90
    while not (train_dir / 'checkpoint').exists():
        assert process.poll() is None, (tmp_path / 'stderr1').read_text()[-2000:]
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    process.stdout.close()

    latest = tf.train.latest_checkpoint(str(train_dir))
    step = int(latest.rsplit('-', 1)[1])
    assert 10 <= step < 200 and step % 10 == 0
    reader = tf.train.load_checkpoint(latest)  # complete: every tensor reads
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
    assert reader.get_tensor('global_step') == step

    # Restart it, and meanwhile watch its checkpoints as eval.py --watch does.
    from slimnorm.train import evaluation
    process = start_script('train.py', *args, stderr_path=tmp_path / 'stderr2')
    watched = [m['global_step'] for m in evaluation.watch(
        run_config.EvalConfig(), str(train_dir), timeout=90, max_steps=200)]
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, (tmp_path / 'stderr2').read_text()[-2000:]
    assert f'Restored {latest}\n' in stdout
    assert f'from step {step} to 200' in stdout
    assert 'Done: step 200' in stdout
    assert len(watched) >= 2 and watched[0] >= step and watched[-1] == 200
    assert watched == sorted(set(watched))
    final = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(train_dir)))
    assert final.get_tensor('global_step') == 200
    # max_to_keep counts the killed process's checkpoints too.
    indexes = [n for n in os.listdir(train_dir) if n.endswith('.index')]
    assert len(indexes) == 3, indexes


def test_sigterm_saves_a_final_checkpoint_and_exits_0(tmp_path):
    train_dir = tmp_path / 'run'
    # No --max_number_of_steps: slim's default, no limit until a signal.
    process = start_script('train.py', '--train_dir', train_dir,
                           '--log_every_steps', 20, '--save_every_secs', 0,
                           stderr_path=tmp_path / 'stderr')
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith('step '):
            break
    assert lines and lines[-1].startswith('step 20/-  '), ''.join(lines)
    assert 'ETA' not in lines[-1] and 'to no limit' in ''.join(lines)
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    process.wait(timeout=60)
    assert process.returncode == 0, (tmp_path / 'stderr').read_text()[-2000:]
    stopped = [line for line in rest.splitlines() if line.startswith('SIGTERM received')]
    assert stopped, rest
    step = int(stopped[0].rsplit(' ', 1)[1])
    assert f'Saved {train_dir}/model.ckpt-{step}' in rest
    latest = tf.train.latest_checkpoint(str(train_dir))
    assert latest == f'{train_dir}/model.ckpt-{step}'
    assert tf.train.load_checkpoint(latest).get_tensor('global_step') == step
    assert 'Traceback' not in (tmp_path / 'stderr').read_text()


@pytest.mark.parametrize('argv, words', [
    (['--model', 'resnet'], ['model', "'resnet'", 'inception_v2', 'small_convnet']),
    (['--normalizer', 'batchnorm'], ['normalizer', "'batchnorm'", 'batch_renorm', 'none']),
    (['--dataset', 'cifar10'], ['dataset', "'cifar10'", 'digits', 'mnist_dir']),
    (['--batch_size', '0'], ['batch_size', '0', '>= 1']),
    (['--lr_schedule', 'linear'], ['learning_rate_decay_type', "'linear'", 'cosine']),
    (['--dataset', 'mnist_dir'], ['data_dir=None', 'dataset=mnist_dir', 'train-images']),
    (['--model_kwargs', '{"depths": '], ["model_kwargs='{\"depths\": ' is not JSON"]),
    (['--max_steps', 'many'], ["--max_steps: invalid int value: 'many'"]),
    (['--max_number_of_steps', '0'], ['max_number_of_steps', '0', '>= 1']),
    (['--dataset_name', 'tfrecord'], ['data_dir=None', 'dataset=tfrecord', '--dataset_dir']),
    (['--dataset_name', 'tfrecord', '--dataset_dir', 'x', '--preprocessing_name', 'vgg'],
     ['preprocessing_name', "'vgg'", 'inception', 'light']),
    (['--preprocessing_name', 'light'], ['preprocessing_name', 'dataset_name=tfrecord']),
    (['--checkpoint_exclude_scopes', 'A/logits'], ['checkpoint_exclude_scopes',
                                                   'without checkpoint_path']),
    (['--checkpoint_path', '/nonexistent/ckpt'], ["checkpoint_path='/nonexistent/ckpt'"]),
    (['--freeze_batch_norm', '--normalizer', 'layer'], ['freeze_batch_norm', "'layer'"]),
    (['--dataset_split_name', 'validation'], ['dataset_split_name', "'validation'", 'test']),
])
def test_bad_train_flags_give_one_line_and_exit_2(argv, words, capsys):
    from slimnorm.cli import train
    with pytest.raises(SystemExit) as info:
        train.main(prog='train.py', argv=argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('train.py: error: ')
    assert all(word in err for word in words), err
    assert err.count('\n') == 1


def test_a_bad_network_argument_is_one_line_too(tmp_path, capsys):
    # Checked by nets.small_convnet when the graph is built, after TF loads.
    from slimnorm.cli import train
    with pytest.raises(SystemExit) as info:
        train.main(prog='train.py', argv=['--train_dir', str(tmp_path),
                                          '--model_kwargs', '{"depths": [0]}'])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('train.py: error: depths') and '[0]' in err, err
    assert err.count('\n') == 1


def test_bad_flag_in_a_subprocess_has_no_traceback():
    finished = run_script('train.py', '--model', 'nope', timeout=60)
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train.py: error: model'), lines
    assert "'nope'" in lines[0] and 'small_convnet' in lines[0]
    assert finished.stdout == ''


def test_missing_data_is_a_usage_error_naming_the_package(tmp_path):
    config = run_config.TrainConfig(dataset='fashion_mnist', data_dir=str(tmp_path / 'none'))
    with pytest.raises(ValueError, match='apt-get install dataset-fashion-mnist'):
        config.load_data()


def test_learning_rate_schedules():
    from slimnorm.train import optimization
    values = {}
    with tf.Graph().as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        for schedule in choices.LR_SCHEDULES + tuple(choices.LR_SCHEDULE_ALIASES):
            config = run_config.TrainConfig(learning_rate=0.1, lr_schedule=schedule,
                                            max_steps=100, warmup_steps=10)
            values[schedule] = optimization.learning_rate(config.check(), step,
                                                          examples_per_epoch=3200)
        with tf.compat.v1.Session() as sess:
            table = {s: [sess.run(values[s], {step: i}) for i in (0, 9, 50, 75, 99)]
                     for s in values}
    np.testing.assert_allclose(table['constant'], [0.01, 0.1, 0.1, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(table['step'], [0.01, 0.1, 0.01, 0.001, 0.001], rtol=1e-5)
    np.testing.assert_allclose(table['cosine'][:3], [0.01, 0.1 * 0.5 * (1 + np.cos(0.09 * np.pi)),
                                                     0.05], rtol=1e-5)


def test_a_diverging_run_stops_with_a_clear_error(tmp_path):
    from slimnorm.train import loop
    config = run_config.TrainConfig(train_dir=str(tmp_path), max_steps=50, learning_rate=1e6,
                                    lr_schedule='constant', optimizer='momentum')
    with pytest.raises(loop.TrainingDivergedError,
                       match=r'the loss became inf or NaN at step \d+ .*Lower --learning_rate'):
        loop.train(config, log=lambda line: None)


@pytest.mark.parametrize('normalizer', ['group', 'layer', 'instance', 'batch_renorm', 'none'])
def test_every_normalizer_trains_checkpoints_and_evaluates(normalizer, tmp_path):
    from slimnorm.train import evaluation, loop
    config = run_config.TrainConfig(train_dir=str(tmp_path), normalizer=normalizer,
                                    max_steps=5, learning_rate=0.01, log_every_steps=5)
    result = loop.train(config, log=lambda line: None)
    assert result['global_step'] == 5
    metrics = evaluation.evaluate(run_config.EvalConfig(normalizer=normalizer), str(tmp_path))
    assert metrics['global_step'] == 5 and 0.0 <= metrics['top1'] <= 1.0
    names = dict(tf.train.list_variables(result['checkpoint']))
    has_moving_stats = any(n.endswith('moving_mean') for n in names)
    assert has_moving_stats == (normalizer == 'batch_renorm')
