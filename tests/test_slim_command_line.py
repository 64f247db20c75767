"""research/slim's whole command line: every train/eval flag with slim's default, and a
slim-style run (rmsprop, exponential decay by epochs, label smoothing, variable EMA)
whose numbers are checked against numpy.

The flag lists are written here from research/slim's train_image_classifier.py
(51 flags) and eval_image_classifier.py (16 flags), with the defaults of their
DEFINE_* lines; they are not read from our parser.
"""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.cli import eval as eval_cli
from slimnorm.cli import train as train_cli
from slimnorm.export import cli as export_cli
from slimnorm.train import config as run_config

from script_helpers import run_script

tf1 = tf.compat.v1

# (slim's flag, slim's default, a value on the command line, the field it sets, parsed)
SLIM_TRAIN_FLAGS = [
    ('master', '', 'grpc://h:1', 'master', 'grpc://h:1'),
    ('train_dir', '/tmp/tfmodel/', 'runs/x', 'train_dir', 'runs/x'),
    ('num_clones', 1, '2', 'num_clones', 2),
    ('clone_on_cpu', False, '--clone_on_cpu', 'clone_on_cpu', True),
    ('worker_replicas', 1, '2', 'worker_replicas', 2),
    ('num_ps_tasks', 0, '1', 'num_ps_tasks', 1),
    ('num_readers', 4, '2', 'num_readers', 2),
    ('num_preprocessing_threads', 4, '3', 'num_preprocessing_threads', 3),
    ('log_every_n_steps', 10, '5', 'log_every_steps', 5),
    ('save_summaries_secs', 600, '60', 'save_summaries_secs', 60),
    ('save_interval_secs', 600, '120', 'save_every_secs', 120),
    ('task', 0, '1', 'task_index', 1),
    ('weight_decay', 0.00004, '0.001', 'weight_decay', 0.001),
    ('optimizer', 'rmsprop', 'adam', 'optimizer', 'adam'),
    ('adadelta_rho', 0.95, '0.9', 'adadelta_rho', 0.9),
    ('adagrad_initial_accumulator_value', 0.1, '0.2', 'adagrad_initial_accumulator_value',
     0.2),
    ('adam_beta1', 0.9, '0.8', 'adam_beta1', 0.8),
    ('adam_beta2', 0.999, '0.99', 'adam_beta2', 0.99),
    ('opt_epsilon', 1.0, '0.1', 'opt_epsilon', 0.1),
    ('ftrl_learning_rate_power', -0.5, '-0.6', 'ftrl_learning_rate_power', -0.6),
    ('ftrl_initial_accumulator_value', 0.1, '0.3', 'ftrl_initial_accumulator_value', 0.3),
    ('ftrl_l1', 0.0, '0.01', 'ftrl_l1', 0.01),
    ('ftrl_l2', 0.0, '0.02', 'ftrl_l2', 0.02),
    ('momentum', 0.9, '0.5', 'momentum', 0.5),
    ('rmsprop_momentum', 0.9, '0.8', 'rmsprop_momentum', 0.8),
    ('rmsprop_decay', 0.9, '0.95', 'rmsprop_decay', 0.95),
    ('quantize_delay', -1, '100', 'quantize_delay', 100),
    ('learning_rate_decay_type', 'exponential', 'polynomial', 'lr_schedule', 'polynomial'),
    ('learning_rate', 0.01, '0.1', 'learning_rate', 0.1),
    ('end_learning_rate', 0.0001, '0.001', 'end_learning_rate', 0.001),
    ('label_smoothing', 0.0, '0.1', 'label_smoothing', 0.1),
    ('learning_rate_decay_factor', 0.94, '0.5', 'learning_rate_decay_factor', 0.5),
    ('num_epochs_per_decay', 2.0, '1.5', 'num_epochs_per_decay', 1.5),
    ('warmup_epochs', 0, '1', 'warmup_epochs', 1.0),
    ('sync_replicas', False, '--sync_replicas', 'sync_replicas', True),
    ('replicas_to_aggregate', 1, '2', 'replicas_to_aggregate', 2),
    ('moving_average_decay', None, '0.9999', 'moving_average_decay', 0.9999),
    ('dataset_name', 'imagenet', 'tfrecord', 'dataset', 'tfrecord'),
    ('dataset_split_name', 'train', 'validation', 'split', 'validation'),
    ('dataset_dir', None, '/data/x', 'data_dir', '/data/x'),
    ('labels_offset', 0, '1', 'labels_offset', 1),
    ('model_name', 'inception_v3', 'inception_v2', 'model', 'inception_v2'),
    ('preprocessing_name', None, 'inception', 'preprocessing_name', 'inception'),
    ('batch_size', 32, '16', 'batch_size', 16),
    ('train_image_size', None, '96', 'image_size', 96),
    ('max_number_of_steps', None, '1000', 'max_steps', 1000),
    ('use_grayscale', False, '--use_grayscale', 'use_grayscale', True),
    ('checkpoint_path', None, '/ckpt', 'checkpoint_path', '/ckpt'),
    ('checkpoint_exclude_scopes', None, 'A/Logits', 'checkpoint_exclude_scopes', 'A/Logits'),
    ('trainable_scopes', None, 'A/Logits', 'trainable_scopes', 'A/Logits'),
    ('ignore_missing_vars', False, '--ignore_missing_vars', 'ignore_missing_vars', True),
]
SLIM_EVAL_FLAGS = [
    ('batch_size', 100, '10', 'batch_size', 10),
    ('max_num_batches', None, '3', 'max_num_batches', 3),
    ('master', '', 'grpc://h:1', 'master', 'grpc://h:1'),
    ('checkpoint_path', '/tmp/tfmodel/', 'runs/x', 'checkpoint_path', 'runs/x'),
    ('eval_dir', '/tmp/tfmodel/', 'runs/x/eval', 'eval_dir', 'runs/x/eval'),
    ('num_preprocessing_threads', 4, '2', 'num_preprocessing_threads', 2),
    ('dataset_name', 'imagenet', 'tfrecord', 'dataset', 'tfrecord'),
    ('dataset_split_name', 'test', 'validation', 'split', 'validation'),
    ('dataset_dir', None, '/data/x', 'data_dir', '/data/x'),
    ('labels_offset', 0, '1', 'labels_offset', 1),
    ('model_name', 'inception_v3', 'inception_v2', 'model', 'inception_v2'),
    ('preprocessing_name', None, 'inception', 'preprocessing_name', 'inception'),
    ('moving_average_decay', None, '0.9999', 'moving_average_decay', 0.9999),
    ('eval_image_size', None, '96', 'image_size', 96),
    ('quantize', False, '--quantize', 'quantize', True),
    ('use_grayscale', False, '--use_grayscale', 'use_grayscale', True),
]
# Where slimnorm's default is not slim's, and why (docs/slim_flags.md says the same).
# None in our parser for a model/data flag means "the run's run_config.json, else
# ModelConfig's default".
TRAIN_DIFFERENCES = {
    'dataset_name': None,           # imagenet is not bundled; ModelConfig: digits
    'model_name': None,             # inception_v3 is not built here; small_convnet
    'replicas_to_aggregate': 0,     # 0 = every worker; slim's 1 drops all but one
    'num_readers': None,            # ModelConfig's 4, left to run_config.json
    'num_preprocessing_threads': None,
    'labels_offset': None,
}
EVAL_DIFFERENCES = {
    'dataset_name': None, 'model_name': None, 'num_preprocessing_threads': None,
    'labels_offset': None,
    'eval_dir': None,               # no summaries unless asked (--watch: <run>/eval)
    'dataset_split_name': None,     # test; validation for TFRecords
    'quantize': None,               # the run's: on for a --quantize_delay run
}


def _default(parser, flag):
    actions = [a for a in parser._actions if f'--{flag}' in a.option_strings]
    assert len(actions) == 1, flag
    return actions[0].default


def test_the_lists_hold_every_flag_of_slims_scripts():
    assert len(SLIM_TRAIN_FLAGS) == 51 and len(SLIM_EVAL_FLAGS) == 16
    assert len({f[0] for f in SLIM_TRAIN_FLAGS}) == 51
    assert len({f[0] for f in SLIM_EVAL_FLAGS}) == 16


@pytest.mark.parametrize('parser_fn, flags, differences, base', [
    (train_cli.build_parser, SLIM_TRAIN_FLAGS, TRAIN_DIFFERENCES, []),
    (eval_cli.build_parser, SLIM_EVAL_FLAGS, EVAL_DIFFERENCES, []),
], ids=['train_image_classifier', 'eval_image_classifier'])
def test_every_slim_flag_parses_with_slims_default(parser_fn, flags, differences, base):
    parser = parser_fn()
    for flag, slim_default, value, field, parsed in flags:
        expected = differences.get(flag, slim_default)
        default = _default(parser, flag)
        assert default == expected and type(default) in (type(expected), int, float), (
            flag, default, expected)
        argv = [value] if value.startswith('--') else [f'--{flag}', value]
        assert getattr(parser.parse_args(base + argv), field) == parsed, flag
        if value.startswith('--'):  # absl's boolean spellings
            assert getattr(parser.parse_args([f'--{flag}=false']), field) is False
            assert getattr(parser.parse_args([f'--{flag}=True']), field) is True
            assert getattr(parser.parse_args([f'--no{flag}']), field) is False
        else:
            assert getattr(parser.parse_args([f'--{flag}={value}']), field) == parsed


def test_a_slim_command_line_with_its_flags_reaches_the_config():
    parser = train_cli.build_parser()
    args = parser.parse_args([
        '--train_dir=/tmp/x', '--optimizer=adam', '--adam_beta1=0.8', '--opt_epsilon=0.1',
        '--learning_rate_decay_type=polynomial', '--end_learning_rate=0.001',
        '--num_epochs_per_decay=1.5', '--warmup_epochs=1', '--label_smoothing=0.1',
        '--moving_average_decay=0.999', '--save_interval_secs=60', '--save_summaries_secs=30',
        '--log_every_n_steps=5', '--max_number_of_steps=100', '--batch_size=16',
        '--noclone_on_cpu', '--sync_replicas=false', '--master=', '--task=0',
        '--worker_replicas=1', '--num_ps_tasks=0', '--weight_decay=0.001'])
    fields = {name: getattr(args, name) for name in
              train_cli.TRAIN_FLAGS + train_cli.SCALE_OUT_FLAGS}
    config = run_config.TrainConfig(**fields).check()
    assert (config.optimizer, config.adam_beta1, config.opt_epsilon, config.lr_schedule,
            config.end_learning_rate, config.num_epochs_per_decay, config.warmup_epochs,
            config.label_smoothing, config.moving_average_decay, config.save_every_secs,
            config.save_summaries_secs, config.log_every_steps, config.max_steps,
            config.batch_size, config.weight_decay) == (
        'adam', 0.8, 0.1, 'polynomial', 0.001, 1.5, 1.0, 0.1, 0.999, 60, 30, 5, 100, 16, 0.001)


@pytest.mark.parametrize('argv', [['--lr', '0.01'], ['--learning_rate_decay', '0.5'],
                                  ['--max_number', '5'], ['--opt', 'sgd']])
def test_prefixes_of_flags_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'unrecognized arguments: {argv[0]}' in err, err


@pytest.mark.parametrize('main, words', [
    (train_cli.main, ['--optimizer', '(default: rmsprop)', '(default: exponential)',
                      '(default: 0.94)', '(default: /tmp/tfmodel/)']),
    (eval_cli.main, ['--max_num_batches', '(default: 100)', '(default: /tmp/tfmodel/)']),
    (export_cli.precise_bn_main, ['--num_batches NUM_BATCHES default: 200']),  # another command: an option without help
])
def test_help_shows_the_defaults(main, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(['--help'])
    assert info.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())
    for word in words:
        assert word in text


@pytest.mark.parametrize('argv, words', [
    (['--quantize_delay', '10', '--normalizer', 'group'],
     ['quantize_delay=10', 'normalizer']),
    (['--worker_replicas', '2'], ['worker_replicas=2', 'accepted: 1 without a cluster']),
    (['--num_ps_tasks', '1'], ['num_ps_tasks=1', 'accepted: 0 without a cluster']),
    (['--master', 'grpc://h:1'], ["master='grpc://h:1'", "accepted: ''"]),
    (['--ps_hosts', 'h:1', '--worker_hosts', 'h:2,h:3', '--job_name', 'worker',
      '--worker_replicas', '3'], ['worker_replicas=3 with 2 host(s)', 'accepted: 1 or 2']),
    (['--ps_hosts', 'h:1', '--worker_hosts', 'h:2,h:3', '--job_name', 'worker', '--task', '1',
      '--master', 'grpc://h:2'], ["master='grpc://h:2'", "accepted: '' or 'grpc://h:3'"]),
    (['--optimizer', 'adamw'], ['optimizer', "'adamw'", 'rmsprop']),
    (['--learning_rate_decay_type', 'cyclic'], ['learning_rate_decay_type', "'cyclic'"]),
    (['--label_smoothing', '1.5'], ['label_smoothing=1.5', '[0, 1)']),
    (['--adam_beta2', '1.0'], ['adam_beta2', '(0, 1)']),
    (['--warmup_epochs', '1', '--warmup_steps', '10'], ['warmup_steps=10 with warmup_epochs']),
    (['--learning_rate_decay_type', 'cosine'], ['cosine', 'without max_number_of_steps']),
    (['--sync_replicas=maybe'], ["'maybe' is not a boolean"]),
])
def test_bad_slim_flags_give_one_line_before_tensorflow(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_the_master_of_a_cluster_task_may_be_its_own_server():
    config = run_config.TrainConfig(ps_hosts='h:1', worker_hosts='h:2,h:3', job_name='worker',
                                    task_index=1, master='grpc://h:3', worker_replicas=2,
                                    num_ps_tasks=1).check()
    assert config.task_index == 1


@pytest.mark.parametrize('argv, words', [
    (['--quantize', '--batch_stats'], ['quantize=True', 'batch_stats']),
    (['--master', 'grpc://h:1'], ["master='grpc://h:1'", 'this process']),
])
def test_bad_slim_eval_flags_give_one_line(argv, words, tmp_path, capsys):
    from script_helpers import digits_run
    config, _ = digits_run()
    with pytest.raises(SystemExit) as info:
        eval_cli.main(['--checkpoint_path', config.train_dir] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for word in words:
        assert word in err, err


# --- the numbers: slim's formulas computed in numpy ---

def _slim_learning_rate(step, lr, examples, batch, epochs_per_decay, decay_type, factor=0.94,
                        end=0.0001, warmup_epochs=0.0, replicas=None):
    """research/slim's _configure_learning_rate, in numpy (float64)."""
    steps_per_epoch = examples / batch
    if replicas:
        steps_per_epoch /= replicas
    decay_steps = int(steps_per_epoch * epochs_per_decay)
    if decay_type == 'exponential':
        rate = lr * factor ** np.floor(step / decay_steps)
    elif decay_type == 'polynomial':
        rate = (lr - end) * (1 - min(step, decay_steps) / decay_steps) + end
    else:
        rate = lr
    if warmup_epochs:
        rate = min(lr * step / (steps_per_epoch * warmup_epochs), rate)
    return rate


@pytest.mark.parametrize('fields, replicas', [
    (dict(lr_schedule='exponential', num_epochs_per_decay=2.0), None),
    (dict(lr_schedule='exponential', num_epochs_per_decay=0.7,
          learning_rate_decay_factor=0.5, warmup_epochs=0.5), None),
    (dict(lr_schedule='polynomial', num_epochs_per_decay=3.0, end_learning_rate=0.002), None),
    (dict(lr_schedule='fixed', warmup_epochs=2.0), None),
    (dict(lr_schedule='exponential', num_epochs_per_decay=1.0, sync_replicas=True), 2),
])
def test_learning_rate_follows_slims_formula(fields, replicas):
    from slimnorm.train import optimization
    examples, batch = 1437, 32
    config = run_config.TrainConfig(learning_rate=0.05, batch_size=batch, **fields).check()
    with tf.Graph().as_default():
        step = tf1.placeholder(tf.int64, [])
        rate = optimization.learning_rate(config, step, examples, replicas or 1)
        with tf1.Session() as sess:
            got = [sess.run(rate, {step: s}) for s in range(0, 400, 7)]
    want = [_slim_learning_rate(
        s, 0.05, examples, batch, config.num_epochs_per_decay, config.lr_schedule,
        config.learning_rate_decay_factor, config.end_learning_rate, config.warmup_epochs,
        replicas) for s in range(0, 400, 7)]
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_label_smoothed_loss_matches_numpy():
    from slimnorm.train import optimization
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    with tf.Graph().as_default():
        loss = optimization.classification_loss(tf.constant(labels), tf.constant(logits), 5,
                                                label_smoothing=0.2)
        with tf1.Session() as sess:
            got = sess.run(loss)
    x = logits.astype(np.float64)
    log_softmax = x - x.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    targets = np.eye(5)[labels] * 0.8 + 0.2 / 5
    np.testing.assert_allclose(got, np.mean(-(targets * log_softmax).sum(1)), rtol=1e-6)


def test_rmsprop_step_uses_slims_hyperparameters():
    """One RMSProp step with slim's flags against the update written out in numpy."""
    from slimnorm.train import optimization
    config = run_config.TrainConfig(optimizer='rmsprop', rmsprop_decay=0.8,
                                    rmsprop_momentum=0.5, opt_epsilon=0.3).check()
    start = np.array([1.0, -2.0, 0.5])
    with tf.Graph().as_default():
        var = tf1.get_variable('w', initializer=tf.constant(start, tf.float64))
        loss = tf.reduce_sum(var ** 3)
        train = optimization.make_optimizer(config, 0.1).minimize(loss)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train)
            got = sess.run(var)
    grad = 3 * start ** 2
    ms = 0.8 * 1.0 + 0.2 * grad ** 2  # TF starts the mean square at 1
    step = 0.1 * grad / np.sqrt(ms + 0.3)  # momentum 0.5 of a zero start
    # rtol: the hyperparameters pass through float32 on the way to the kernel.
    np.testing.assert_allclose(got, start - step, rtol=1e-7)


@pytest.mark.parametrize('name, kind, attributes', [
    ('adadelta', 'AdadeltaOptimizer', {'_rho': 0.8, '_epsilon': 0.3}),
    ('adagrad', 'AdagradOptimizer', {'_initial_accumulator_value': 0.2}),
    ('adam', 'AdamOptimizer', {'_beta1': 0.7, '_beta2': 0.99, '_epsilon': 0.3}),
    ('ftrl', 'FtrlOptimizer', {'_learning_rate_power': -0.6, '_l1_regularization_strength': 0.01,
                               '_l2_regularization_strength': 0.02,
                               '_initial_accumulator_value': 0.3}),
    ('momentum', 'MomentumOptimizer', {'_momentum': 0.6}),
    ('rmsprop', 'RMSPropOptimizer', {'_decay': 0.85, '_momentum': 0.4, '_epsilon': 0.3}),
    ('sgd', 'GradientDescentOptimizer', {}),
])
def test_every_optimizer_gets_its_flags(name, kind, attributes):
    from slimnorm.train import optimization
    config = run_config.TrainConfig(
        optimizer=name, adadelta_rho=0.8, opt_epsilon=0.3, adagrad_initial_accumulator_value=0.2,
        adam_beta1=0.7, adam_beta2=0.99, ftrl_learning_rate_power=-0.6, ftrl_l1=0.01,
        ftrl_l2=0.02, ftrl_initial_accumulator_value=0.3, momentum=0.6, rmsprop_decay=0.85,
        rmsprop_momentum=0.4).check()
    optimizer = optimization.make_optimizer(config, 0.1)
    assert type(optimizer).__name__ == kind
    for attribute, value in attributes.items():
        assert getattr(optimizer, attribute) == value, attribute


# --- a slim-style run from the command line ---

# The command of docs/slim_flags.md (its --train_dir here a temporary directory).
SLIM_RUN = ['--dataset_name=digits', '--optimizer=rmsprop',
            '--learning_rate_decay_type=exponential', '--num_epochs_per_decay=0.5',
            '--learning_rate_decay_factor=0.5', '--label_smoothing=0.1',
            '--moving_average_decay=0.95', '--batch_size=32', '--max_number_of_steps=60']


@pytest.fixture(scope='module')
def slim_run(tmp_path_factory):
    train_dir = str(tmp_path_factory.mktemp('slim_run'))
    trained = run_script('train_image_classifier.py', f'--train_dir={train_dir}', *SLIM_RUN,
                         timeout=240)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert 'Traceback' not in trained.stderr
    return train_dir, trained.stdout


def test_slim_run_learning_rate_is_slims_exponential_decay_by_epochs(slim_run):
    train_dir, stdout = slim_run
    examples = len(run_config.TrainConfig().load_data().split('train')[1])
    rates = {}
    for path in glob.glob(os.path.join(train_dir, 'events.out.tfevents.*')):
        for event in tf1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == 'learning_rate':
                    rates[event.step] = value.simple_value
    assert 60 in rates and len(rates) >= 2, rates
    for step, rate in rates.items():
        # Fetched with the step that ends at ``step``: the global step is read
        # before or after its increment (the two differ at a decay boundary).
        want = {_slim_learning_rate(s, 0.01, examples, 32, 0.5, 'exponential', 0.5)
                for s in (step - 1, step)}
        assert any(rate == pytest.approx(w, rel=1e-6) for w in want), (step, rate, want)
    assert 'Done: step 60' in stdout


def test_slim_run_keeps_the_ema_and_eval_restores_the_shadows(slim_run):
    from slimnorm.train import evaluation
    train_dir, _ = slim_run
    checkpoint = tf.train.latest_checkpoint(train_dir)
    reader = tf.train.load_checkpoint(checkpoint)
    names = reader.get_variable_to_shape_map()
    weights = 'SmallConvNet/conv1/weights'
    assert f'{weights}/ExponentialMovingAverage' in names and f'{weights}/RMSProp' in names
    config = run_config.EvalConfig(moving_average_decay=0.95).check()
    evaluator = evaluation.Evaluator(config)
    with tf1.Session(graph=evaluator.graph) as sess:
        sess.run(evaluator.init)
        evaluator.saver.restore(sess, checkpoint)
        restored = {v.op.name: sess.run(v) for v in
                    evaluator.graph.get_collection(tf1.GraphKeys.MODEL_VARIABLES)}
    assert restored
    for name, value in restored.items():
        np.testing.assert_array_equal(value, reader.get_tensor(f'{name}/ExponentialMovingAverage'))
    assert not np.allclose(restored[weights], reader.get_tensor(weights))

    # The command of docs/slim_flags.md.
    evaluated = run_script('eval_image_classifier.py', f'--checkpoint_path={train_dir}',
                           '--moving_average_decay=0.95', f'--eval_dir={train_dir}/eval')
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics['num_examples'] == 359 and metrics['global_step'] == 60
    shadows = evaluation.Evaluator(run_config.EvalConfig(moving_average_decay=0.95)
                                   ).run(checkpoint)
    assert metrics['top1'] == shadows['top1'] > 0.5
    assert metrics['loss'] == pytest.approx(shadows['loss'], rel=1e-5)
    plain = evaluation.Evaluator(run_config.EvalConfig()).run(checkpoint)
    assert plain['loss'] != shadows['loss']
    assert glob.glob(os.path.join(train_dir, 'eval', 'events.out.tfevents.*'))
    first = evaluation.Evaluator(run_config.EvalConfig(batch_size=50, max_num_batches=3)
                                 ).run(checkpoint)
    assert first['num_examples'] == 150
