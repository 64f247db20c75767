"""Fine-tuning (slimnorm.train.warm_start) and --freeze_batch_norm, on slim-format TFRecords.

A source network is trained on digits 0-5, then fine-tuned to digits 6-9
with its logits excluded from the restore (6 -> 4 classes) and only the
logits trained. Every other variable must come out bit-identical to the
source checkpoint, read back with TensorFlow's checkpoint reader.
"""
import numpy as np
import pytest
import tensorflow as tf

from slimnorm.train import loop
from slimnorm.train.config import EvalConfig, TrainConfig

from tfrecord_helpers import write_digits

LOGITS = 'SmallConvNet/logits'


def _quiet(line):
    pass


def _config(data_dir, train_dir, **fields):
    fields.setdefault('max_steps', 60)
    return TrainConfig(dataset='tfrecord', data_dir=str(data_dir), image_size=8,
                       train_dir=str(train_dir), batch_size=32, log_every_steps=1000,
                       learning_rate=0.05, optimizer='momentum', **fields)


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """(TrainConfig, checkpoint) of digits 0-5, and the TFRecords of 6-9."""
    root = tmp_path_factory.mktemp('fine_tuning')
    old = write_digits(str(root / 'digits_0_5'), classes=range(6))
    new = write_digits(str(root / 'digits_6_9'), classes=range(6, 10))
    config = _config(old, root / 'source', max_steps=150)
    return config, loop.train(config, log=_quiet)['checkpoint'], new


def _variables(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _fine_tune(source, train_dir, **fields):
    _, checkpoint, new = source
    fields = dict(dict(checkpoint_path=checkpoint, checkpoint_exclude_scopes=(LOGITS,),
                       trainable_scopes=(LOGITS,)), **fields)
    config = _config(new, train_dir, **fields)
    lines = []
    return config, loop.train(config, log=lines.append), lines


def test_only_the_logits_change_and_they_learn_the_new_classes(source, tmp_path):
    from slimnorm.train import evaluation
    config, result, lines = _fine_tune(source, tmp_path / 'tuned', freeze_batch_norm=True)
    assert result['start_step'] == 0 and result['global_step'] == 60
    assert any(line.startswith(f'Warm start from {source[1]}') for line in lines), lines
    # the banner of a run whose batch norms are frozen: no "runs all 0 UPDATE_OPS ops"
    assert any(line.endswith('check_update_ops: no moving statistics to update (UPDATE_OPS is '
                             'empty: no batch norm, or batch norm frozen)') for line in lines)
    before, after = _variables(source[1]), _variables(result['checkpoint'])
    frozen = [name for name in before
              if name.startswith('SmallConvNet/') and not name.startswith(LOGITS)
              and '/Momentum' not in name]
    assert len(frozen) == 5 * 5  # weights, beta, gamma, moving mean/variance of 5 convs
    for name in frozen:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert after[LOGITS + '/weights'].shape == (128, 4)  # new classes, new logits
    assert f'{LOGITS}/weights/Momentum' in after
    assert not any(name.endswith('/Momentum') and not name.startswith(LOGITS)
                   for name in after)  # nothing else was given optimizer slots
    metrics = evaluation.evaluate(EvalConfig(dataset='tfrecord', data_dir=config.data_dir,
                                             split='test', image_size=8), config.train_dir)
    assert metrics['num_examples'] == 143  # test digits 6-9 of the stratified split
    assert metrics['top1'] >= 0.6, metrics  # chance: 0.25; 0.81 when written


def test_without_freeze_batch_norm_the_moving_statistics_still_move(source, tmp_path):
    """trainable_scopes stops gradients, not the batch-norm updates (slim's semantics)."""
    _, result, _ = _fine_tune(source, tmp_path / 'tuned', max_steps=10)
    before, after = _variables(source[1]), _variables(result['checkpoint'])
    for name in before:
        if name.startswith('SmallConvNet/') and not name.startswith(LOGITS):
            if name.endswith(('/moving_mean', '/moving_variance')):
                assert not np.array_equal(after[name], before[name]), name
            elif '/Momentum' not in name:
                np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_a_restarted_fine_tuning_run_resumes_from_its_own_checkpoint(source, tmp_path):
    config, first, _ = _fine_tune(source, tmp_path / 'tuned', max_steps=10,
                                  freeze_batch_norm=True)
    config.max_steps = 20
    lines = []
    second = loop.train(config, log=lines.append)
    assert second['start_step'] == 10 and second['global_step'] == 20
    assert not any(line.startswith('Warm start') for line in lines), lines
    assert any(line == f'Restored {first["checkpoint"]}' for line in lines), lines


def test_logits_of_another_shape_and_missing_variables_are_named(source, tmp_path):
    with pytest.raises(ValueError, match=f'other shapes: {LOGITS}/weights \\[128, 4\\] '
                       '\\(checkpoint \\[128, 6\\]\\), .*--checkpoint_exclude_scopes'):
        _fine_tune(source, tmp_path / 'a', checkpoint_exclude_scopes=())
    wider = {'model_kwargs': {'fc_units': 16}}
    with pytest.raises(ValueError, match='lacks 5 variables: SmallConvNet/fc6/weights, .*'
                       '--ignore_missing_vars'):
        _fine_tune(source, tmp_path / 'b', trainable_scopes=(), **wider)
    _, result, lines = _fine_tune(source, tmp_path / 'c', trainable_scopes=(), max_steps=2,
                                  ignore_missing_vars=True, **wider)
    assert result['global_step'] == 2
    assert any('5 missing left at their initial values: SmallConvNet/fc6/' in line
               for line in lines), lines


def test_trainable_scopes_that_match_nothing_are_refused(source, tmp_path):
    with pytest.raises(ValueError, match="trainable_scopes='Nope/x' matches no trainable"):
        _fine_tune(source, tmp_path / 'a', trainable_scopes=('Nope/x',))


def test_freeze_batch_norm_builds_no_update_ops_and_no_trainable_gamma_beta():
    config = TrainConfig(freeze_batch_norm=True, max_steps=1)
    with tf.Graph().as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1])
        config.build_logits(images, 10, is_training=True, freeze_batch_norm=True)
        assert tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS) == []
        trainable = [v.op.name for v in tf.compat.v1.trainable_variables()]
    assert trainable and not any('BatchNorm' in name for name in trainable), trainable
    with pytest.raises(ValueError, match="freeze_batch_norm=True with normalizer='group'"):
        TrainConfig(freeze_batch_norm=True, normalizer='group').check()


@pytest.mark.parametrize('is_training, trainable', [(True, True), (True, False),
                                                    (False, True), (False, False)])
def test_is_training_and_trainable_act_separately(is_training, trainable):
    """The table of docs/training_notes.md: unlike Keras, trainable=False keeps training mode."""
    import slimnorm
    x = np.random.RandomState(0).normal(3.0, 2.0, (16, 4)).astype(np.float32)
    with tf.Graph().as_default():
        out = slimnorm.batch_norm(tf.constant(x), is_training=is_training, trainable=trainable,
                                  scale=True)
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        trained = {v.op.name.rsplit('/', 1)[1] for v in tf.compat.v1.trainable_variables()}
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            got = sess.run(out)
    assert len(updates) == (2 if is_training else 0)
    assert trained == ({'beta', 'gamma'} if trainable else set())
    # Training mode normalizes with the batch's moments, inference mode with
    # the initial moving statistics (mean 0, variance 1).
    expected = ((x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) if is_training
                else x / np.sqrt(1 + 1e-3))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
