"""slimnorm-train --sync_batch_norm: clones whose batch norm reduces over all of them.

The independent check is the one-device network on the whole batch: a
training step of 2 synchronized clones on its two halves must leave every
variable (weights, gamma/beta, moving statistics) where the one-device step
leaves it, and unsynchronized clones must not.
"""
import numpy as np
import pytest
import tensorflow as tf

from slimnorm.train import loop
from slimnorm.train.config import EvalConfig, TrainConfig, read_run_config

tf1 = tf.compat.v1

DEPTHS = {'depths': [8, 16]}
BATCH = 16


def _batch():
    data = TrainConfig().load_data()
    return data.train_images[:BATCH], data.train_labels[:BATCH]


def _step(config, images, labels, values=None):
    """Global variables after one training step from ``values`` (None: fresh)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, (None,) + images.shape[1:])
        y = tf1.placeholder(tf.int64, [None])
        model = loop.build_train_graph(config, x, y, 10)
        variables = tf1.global_variables()
        init = tf1.global_variables_initializer()
    with tf1.Session(graph=graph, config=config.session_config()) as sess:
        sess.run(init)
        if values is not None:
            for var in variables:
                var.load(values[var.op.name], sess)
        before = {v.op.name: value for v, value in zip(variables, sess.run(variables))}
        sess.run(model.train_op, {x: images, y: labels})
        after = {v.op.name: value for v, value in zip(variables, sess.run(variables))}
    return before, after


def _config(**kwargs):
    return TrainConfig(model_kwargs=DEPTHS, optimizer='sgd', learning_rate=0.1,
                       lr_schedule='fixed', weight_decay=1e-3, **kwargs)


def test_synchronized_clones_step_like_one_device_on_the_whole_batch():
    images, labels = _batch()
    start, synced = _step(_config(num_clones=2, clone_on_cpu=True, sync_batch_norm=True),
                          images, labels)
    _, whole = _step(_config(), images, labels, start)
    assert sorted(synced) == sorted(whole)
    moving = [n for n in whole if n.endswith(('moving_mean', 'moving_variance'))]
    assert len(moving) == 4
    for name in whole:
        np.testing.assert_allclose(synced[name], whole[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    # Per-clone batch norm (clone 0's half only) ends elsewhere: the check can fail.
    _, local = _step(_config(num_clones=2, clone_on_cpu=True), images, labels, start)
    name = 'SmallConvNet/conv1/BatchNorm/moving_variance'
    assert not np.allclose(local[name], whole[name], rtol=1e-4, atol=1e-6)


def test_sync_batch_norm_trains_and_evaluates_from_the_command_line(tmp_path, capsys):
    from slimnorm.cli import eval as eval_cli
    from slimnorm.cli import train as train_cli
    train_dir = str(tmp_path / 'run')
    code = train_cli.main(['--num_clones', '2', '--clone_on_cpu', '--sync_batch_norm',
                           '--batch_size', '16', '--max_number_of_steps', '200',
                           '--train_dir', train_dir,
                           '--log_every_steps', '50'])
    assert code == 0
    assert read_run_config(train_dir)['sync_batch_norm'] is True
    # Evaluation needs no replica group: the moving statistics normalize.
    assert eval_cli.main(['--checkpoint_path', train_dir]) == 0
    metrics = __import__('json').loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics['global_step'] == 200 and metrics['top1'] >= 0.9, metrics
    assert EvalConfig().check()  # the eval config has no sync field to forget


@pytest.mark.parametrize('fields, phrase', [
    ({'normalizer': 'group'}, "normalizer='group'"),
    ({'normalizer': 'batch_renorm'}, "normalizer='batch_renorm'"),
    ({'freeze_batch_norm': True}, 'freeze_batch_norm=True'),
    ({'sync_batch_norm': 'yes'}, "sync_batch_norm"),
])
def test_sync_batch_norm_refuses_what_it_cannot_synchronize(fields, phrase):
    fields = dict({'sync_batch_norm': True}, **fields)
    with pytest.raises((ValueError, TypeError), match=phrase.replace('(', r'\(')):
        TrainConfig(**fields).check()
