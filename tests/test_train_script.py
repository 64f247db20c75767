"""scripts/train.py and train_lib: accuracy, checkpoint contents, resume, signals, CLI errors."""
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

import script_helpers
from script_helpers import config_lib, digits_run, run_script, start_script


def test_digits_run_reaches_95_percent_test_accuracy():
    import eval_lib
    config, result = digits_run()
    assert result['global_step'] == script_helpers.DIGITS_STEPS
    assert result['checkpoint'].endswith(f'model.ckpt-{script_helpers.DIGITS_STEPS}')
    assert result['interrupted'] is None and result['start_step'] == 0
    metrics = eval_lib.evaluate(config_lib.EvalConfig(), config.train_dir)
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
    assert 'SmallConvNet/conv1/weights/Momentum' in names  # optimizer slots too
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
    import train_lib
    config, result = digits_run()
    again = train_lib.train(config, log=lambda line: None)
    assert again['start_step'] == again['global_step'] == script_helpers.DIGITS_STEPS
    assert again['checkpoint'] == result['checkpoint']
    other = config_lib.TrainConfig(**dict(vars(config), normalizer='group'))
    with pytest.raises(config_lib.UsageError,
                       match="normalizer='group' \\(was 'batch'\\); use a new train_dir"):
        train_lib.train(other, log=lambda line: None)


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
    import eval_lib
    process = start_script('train.py', *args, stderr_path=tmp_path / 'stderr2')
    watched = [m['global_step'] for m in eval_lib.watch(
        config_lib.EvalConfig(), str(train_dir), timeout=90, max_steps=200)]
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
    process = start_script('train.py', '--train_dir', train_dir, '--max_steps', 100000,
                           '--log_every_steps', 20, '--save_every_secs', 0,
                           stderr_path=tmp_path / 'stderr')
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith('step '):
            break
    assert lines and lines[-1].startswith('step 20/100000'), ''.join(lines)
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


@pytest.mark.parametrize('argv, message', [
    (['--model', 'resnet'], "model='resnet' is not known; accepted: inception_v2, small_convnet"),
    (['--normalizer', 'batchnorm'], "normalizer='batchnorm' is not known; accepted: batch,"),
    (['--dataset', 'cifar10'], "dataset='cifar10' is not known; accepted: digits,"),
    (['--batch_size', '0'], 'batch_size=0 must be an integer >= 1'),
    (['--lr_schedule', 'linear'], "lr_schedule='linear' is not known"),
    (['--dataset', 'mnist_dir'], 'data_dir is required with dataset=mnist_dir'),
    (['--model_kwargs', '{"depths": '], "model_kwargs='{\"depths\": ' is not JSON"),
    (['--max_steps', 'many'], "argument --max_steps: invalid int value: 'many'"),
])
def test_bad_train_flags_give_one_line_and_exit_2(argv, message, capsys):
    import train
    with pytest.raises(SystemExit) as info:
        config_lib.run_cli(train.build_parser(), train.main, argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('train.py: error: ')
    assert message in err and err.count('\n') == 1


def test_bad_flag_in_a_subprocess_has_no_traceback():
    finished = run_script('train.py', '--model', 'nope', timeout=60)
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines() == [
        "train.py: error: model='nope' is not known; accepted: inception_v2, small_convnet "
        '(see --help)']
    assert finished.stdout == ''


def test_missing_data_is_a_usage_error_naming_the_package(tmp_path):
    config = config_lib.TrainConfig(dataset='fashion_mnist', data_dir=str(tmp_path / 'none'))
    with pytest.raises(config_lib.UsageError, match='apt-get install dataset-fashion-mnist'):
        config.load_data()


def test_spelled_out_choices_match_the_factory_and_the_loaders():
    from nets import nets_factory
    from slimnorm import datasets
    assert config_lib.MODELS == tuple(sorted(nets_factory.NETWORKS))
    assert config_lib.DATASETS == datasets.DATASETS


def test_learning_rate_schedules():
    import train_lib
    values = {}
    with tf.Graph().as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        for schedule in config_lib.LR_SCHEDULES:
            config = config_lib.TrainConfig(learning_rate=0.1, lr_schedule=schedule,
                                            max_steps=100, warmup_steps=10)
            values[schedule] = train_lib.learning_rate_schedule(config, step)
        with tf.compat.v1.Session() as sess:
            table = {s: [sess.run(values[s], {step: i}) for i in (0, 9, 50, 75, 99)]
                     for s in values}
    np.testing.assert_allclose(table['constant'], [0.01, 0.1, 0.1, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(table['step'], [0.01, 0.1, 0.01, 0.001, 0.001], rtol=1e-5)
    np.testing.assert_allclose(table['cosine'][:3], [0.01, 0.1 * 0.5 * (1 + np.cos(0.09 * np.pi)),
                                                     0.05], rtol=1e-5)


def test_a_diverging_run_stops_with_a_clear_error(tmp_path):
    import train_lib
    config = config_lib.TrainConfig(train_dir=str(tmp_path), max_steps=50, learning_rate=1e6,
                                    lr_schedule='constant')
    with pytest.raises(train_lib.TrainingDivergedError,
                       match=r'the loss became inf or NaN at step \d+ .*Lower --learning_rate'):
        train_lib.train(config, log=lambda line: None)


@pytest.mark.parametrize('normalizer', ['group', 'layer', 'instance', 'batch_renorm', 'none'])
def test_every_normalizer_trains_checkpoints_and_evaluates(normalizer, tmp_path):
    import eval_lib
    import train_lib
    import slimnorm
    needed = {'group': 'group_norm', 'layer': 'layer_norm', 'instance': 'instance_norm'}
    if not hasattr(slimnorm, needed.get(normalizer, 'batch_norm')):
        pytest.skip(f'slimnorm.{needed[normalizer]} is not there yet')
    config = config_lib.TrainConfig(train_dir=str(tmp_path), normalizer=normalizer,
                                    max_steps=5, learning_rate=0.01, log_every_steps=5)
    result = train_lib.train(config, log=lambda line: None)
    assert result['global_step'] == 5
    metrics = eval_lib.evaluate(config_lib.EvalConfig(normalizer=normalizer), str(tmp_path))
    assert metrics['global_step'] == 5 and 0.0 <= metrics['top1'] <= 1.0
    names = dict(tf.train.list_variables(result['checkpoint']))
    has_moving_stats = any(n.endswith('moving_mean') for n in names)
    assert has_moving_stats == (normalizer == 'batch_renorm')
