"""scripts/eval.py (slimnorm-eval) and slimnorm.train.evaluation: same numbers as
in-process, BN modes, restores, errors."""
import json

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.train import config as run_config

from script_helpers import digits_run, run_script

tf1 = tf.compat.v1


def _evaluate(train_dir, **fields):
    from slimnorm.train import evaluation
    return evaluation.evaluate(run_config.EvalConfig(**fields), train_dir)


def test_eval_script_reports_the_in_process_accuracy():
    config, result = digits_run()
    expected = _evaluate(config.train_dir)
    finished = run_script('eval.py', '--checkpoint_path', config.train_dir)
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = finished.stdout.strip().splitlines()
    reported = json.loads(lines[-1])
    assert reported['checkpoint'] == result['checkpoint']
    assert reported['top1'] == expected['top1'] >= 0.95
    assert reported['top5'] == expected['top5']
    assert reported['loss'] == pytest.approx(expected['loss'], rel=1e-5)
    assert reported['num_examples'] == 359 and reported['global_step'] == 300
    table = '\n'.join(lines[:-1])
    assert f'top-1 accuracy  {expected["top1"]:.4f}' in table and 'top-5 accuracy' in table


def test_eval_mode_does_not_depend_on_the_batch_size():
    config, _ = digits_run()
    whole = _evaluate(config.train_dir)
    one_by_one = _evaluate(config.train_dir, batch_size=1)
    assert one_by_one['top1'] == whole['top1']
    assert one_by_one['loss'] == pytest.approx(whole['loss'], rel=1e-4)


def test_batch_of_one_in_train_mode_is_degenerate_but_eval_mode_is_not():
    """With batch 1, train-mode batch norm over a 1x1 map outputs beta.

    On 8x8 digits conv4 and conv5 see 1x1 maps, so in train mode each of
    their channels has one value per batch of one: it is its own mean,
    normalizes to 0, and the layer outputs relu(beta) whatever the image.
    Every image then gets the same logits. Eval mode uses the moving
    statistics and keeps the images apart.
    """
    from slimnorm.data import datasets
    from slimnorm.train import evaluation
    config, result = digits_run()
    images, labels = datasets.load_digits().split('test')
    outputs = {}
    for batch_stats in (True, False):
        evaluator = evaluation.Evaluator(run_config.EvalConfig(batch_stats=batch_stats))
        with tf1.Session(graph=evaluator.graph) as sess:
            evaluator.saver.restore(sess, result['checkpoint'])
            fetched = [sess.run([evaluator.logits, evaluator.end_points['conv5']],
                                {evaluator.data.images: images[i:i + 1]})
                       for i in range(8)]
        outputs[batch_stats] = (np.concatenate([f[0] for f in fetched]),
                                np.concatenate([f[1] for f in fetched]))
    beta = tf.train.load_checkpoint(result['checkpoint']).get_tensor(
        'SmallConvNet/conv5/BatchNorm/beta')
    train_logits, train_conv5 = outputs[True]
    np.testing.assert_allclose(train_conv5.reshape(8, -1),
                               np.tile(np.maximum(beta, 0), (8, 1)), atol=1e-5)
    np.testing.assert_allclose(train_logits, np.tile(train_logits[:1], (8, 1)), atol=1e-5)
    eval_logits, _ = outputs[False]
    assert np.ptp(eval_logits, axis=0).max() > 1.0  # the images differ
    assert np.mean(np.argmax(eval_logits, 1) == labels[:8]) >= 0.75

    degenerate = _evaluate(config.train_dir, batch_stats=True, batch_size=1)
    assert degenerate['top1'] < 0.2  # one class for every image: chance level


def test_excluded_scopes_keep_their_initial_values():
    config, _ = digits_run()
    partial = _evaluate(config.train_dir, checkpoint_exclude_scopes=('SmallConvNet/logits',))
    assert partial['top1'] < 0.5  # random logits layer


def test_missing_variables_are_named_before_restoring():
    config, _ = digits_run()
    with pytest.raises(ValueError, match='lacks 5 variables: SmallConvNet/fc6/'):
        _evaluate(config.train_dir, model_kwargs={'fc_units': 16})
    with pytest.raises(ValueError,
                       match='ExponentialMovingAverage.*not trained with --moving_average_decay'):
        _evaluate(config.train_dir, moving_average_decay=0.99)


def test_moving_average_shadows_are_restored(tmp_path):
    from slimnorm.train import loop
    config = run_config.TrainConfig(train_dir=str(tmp_path), max_steps=150,
                                    moving_average_decay=0.9, log_every_steps=150)
    result = loop.train(config, log=lambda line: None)
    reader = tf.train.load_checkpoint(result['checkpoint'])
    shadow = 'SmallConvNet/conv1/weights/ExponentialMovingAverage'
    assert not np.allclose(reader.get_tensor(shadow),
                           reader.get_tensor('SmallConvNet/conv1/weights'))
    plain = _evaluate(config.train_dir)
    averaged = _evaluate(config.train_dir, moving_average_decay=0.9)
    assert averaged['global_step'] == plain['global_step'] == 150
    assert averaged['loss'] != plain['loss']
    assert averaged['top1'] > 0.9


def test_watch_evaluates_the_latest_checkpoint_and_stops():
    from slimnorm.train import evaluation
    config, result = digits_run()
    seen = list(evaluation.watch(run_config.EvalConfig(), config.train_dir, timeout=1,
                               max_steps=300))
    assert [m['checkpoint'] for m in seen] == [result['checkpoint']]


@pytest.mark.parametrize('argv, message', [
    (['--checkpoint_path', '/nonexistent/run'], "checkpoint_path='/nonexistent/run' is neither"),
    (['--checkpoint_path', '{empty_dir}', '--normalizer', 'bn'], "is a directory without checkpoints"),
    (['--checkpoint_path', 'x', '--timeout', '5'], 'timeout=5.0 without --watch'),
    (['--checkpoint_path', 'x', '--watch'], "checkpoint_path='x' with --watch; accepted: the training"),
    ([], "checkpoint_path='/tmp/tfmodel/'"),  # slim's default path, empty here
])
def test_bad_eval_flags_give_one_line_and_exit_2(argv, message, capsys, tmp_path):
    from slimnorm.cli import eval as eval_script
    argv = [arg.format(empty_dir=tmp_path) for arg in argv]
    with pytest.raises(SystemExit) as info:
        eval_script.main(prog='eval.py', argv=argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('eval.py: error: ') and message in err and err.count('\n') == 1


def test_bad_normalizer_for_a_checkpoint_dir_is_refused():
    from slimnorm.cli import eval as eval_script
    config, _ = digits_run()
    with pytest.raises(SystemExit) as info:
        eval_script.main(prog='eval.py',
                         argv=['--checkpoint_path', config.train_dir, '--normalizer', 'bn'])
    assert info.value.code == 2
