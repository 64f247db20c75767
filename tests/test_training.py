"""slimnorm.training: the UPDATE_OPS guard, create_train_op, savers, restore maps."""
import numpy as np
import pytest
import tensorflow as tf

from nets import nets_factory
from slimnorm.train import train_op as training

tf1 = tf.compat.v1
UPDATE_OPS = tf1.GraphKeys.UPDATE_OPS


def _convnet_loss(is_training=True, batch=8):
    """Small convnet on 8x8 inputs with batch norm; returns (images, labels, loss)."""
    images = tf1.placeholder(tf.float32, [batch, 8, 8, 1])
    labels = tf1.placeholder(tf.int64, [batch])
    network_fn = nets_factory.get_network_fn('small_convnet', num_classes=10,
                                             is_training=is_training,
                                             depths=(4, 4, 4))
    logits, _ = network_fn(images)
    loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
    return images, labels, loss


def _feed(images, labels, seed=0):
    rng = np.random.RandomState(seed)
    return {images: rng.rand(*images.shape.as_list()).astype(np.float32),
            labels: rng.randint(0, 10, labels.shape.as_list())}


def _update_op_count():
    return len(tf1.get_collection(UPDATE_OPS))


def test_create_train_op_runs_every_update_op_and_passes_the_check():
    with tf.Graph().as_default():
        images, labels, loss = _convnet_loss()
        assert _update_op_count() == 6  # 3 batch norms x (mean, variance)
        train_op = training.create_train_op(loss, tf1.train.GradientDescentOptimizer(0.1))
        assert len(training.check_update_ops(train_op)) == 6
        moving_mean = [v for v in tf1.global_variables() if v.op.name.endswith('moving_mean')]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            before = sess.run(moving_mean)
            sess.run(train_op, _feed(images, labels))
            after = sess.run(moving_mean)
            assert sess.run(tf1.train.get_global_step()) == 1
        assert all(np.any(a != b) for a, b in zip(after, before))


def test_minimize_without_update_ops_is_refused_with_their_names():
    with tf.Graph().as_default():
        _, _, loss = _convnet_loss()
        train_op = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        with pytest.raises(training.MissingUpdateOpsError) as info:
            training.check_update_ops(train_op)
        expected = sorted(op.op.name if not isinstance(op, tf.Operation) else op.name
                          for op in tf1.get_collection(UPDATE_OPS))
    message = str(info.value)
    assert sorted(info.value.missing) == expected and len(expected) == 6
    assert 'does not run 6 of the 6 ops in UPDATE_OPS' in message
    for name in expected:
        assert name in message
    assert 'SmallConvNet/conv1/BatchNorm/AssignMovingAvg' in message
    assert isinstance(info.value, ValueError)


def test_minimize_under_update_ops_dependencies_passes():
    with tf.Graph().as_default():
        _, _, loss = _convnet_loss()
        with tf.control_dependencies(tf1.get_collection(UPDATE_OPS)):
            train_op = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        training.check_update_ops(train_op)


def test_partial_dependencies_name_only_the_missing_ops():
    with tf.Graph().as_default():
        _, _, loss = _convnet_loss()
        updates = tf1.get_collection(UPDATE_OPS)
        with tf.control_dependencies(updates[:4]):
            train_op = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        with pytest.raises(training.MissingUpdateOpsError) as info:
            training.check_update_ops(train_op)
        # slim's default path collects operations, its fused path tensors
        names = [getattr(u, "op", u).name for u in updates]
        assert sorted(info.value.missing) == sorted(names[4:])
        assert names[0] not in str(info.value)


def test_explicit_update_ops_that_leave_some_out_are_refused():
    with tf.Graph().as_default():
        _, _, loss = _convnet_loss()
        updates = tf1.get_collection(UPDATE_OPS)
        with pytest.raises(training.MissingUpdateOpsError, match='update_ops leaves out 2'):
            training.create_train_op(loss, tf1.train.GradientDescentOptimizer(0.1),
                                     update_ops=updates[:4])


def test_no_update_ops_nothing_to_check():
    with tf.Graph().as_default():
        _, _, loss = _convnet_loss(is_training=False)
        assert _update_op_count() == 0
        train_op = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        assert training.check_update_ops(train_op) == []


def _cond_update_graph():
    """An update op created inside a tf.cond branch (a function graph)."""
    var = tf1.get_variable('stat', [], initializer=tf1.zeros_initializer(), trainable=False)
    weight = tf1.get_variable('w', [], initializer=tf1.ones_initializer())
    flag = tf1.placeholder_with_default(True, [])

    def update():
        op = var.assign_add(1.0, read_value=False)
        tf1.add_to_collection(UPDATE_OPS, op)
        with tf.control_dependencies([op]):
            return tf.identity(weight)

    out = tf.cond(flag, update, lambda: tf.identity(weight), name='maybe_update')
    return var, weight, tf.square(out)


def test_update_op_inside_cond_counts_through_the_cond_op():
    with tf.Graph().as_default():
        var, _, loss = _cond_update_graph()
        update_op = training._as_ops(tf1.get_collection(UPDATE_OPS))[0]
        assert update_op.graph is not tf1.get_default_graph()
        # The loss depends on the cond op, hence on the update inside it.
        train_op = training.create_train_op(loss, tf1.train.GradientDescentOptimizer(0.1))
        training.check_update_ops(train_op)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train_op)
            assert sess.run(var) == 1.0


def test_update_op_inside_an_unused_cond_is_reported_with_its_caller():
    with tf.Graph().as_default():
        _, weight, _ = _cond_update_graph()
        train_op = tf1.train.GradientDescentOptimizer(0.1).minimize(tf.square(weight))
        with pytest.raises(training.MissingUpdateOpsError) as info:
            training.check_update_ops(train_op)
        assert 'run by op maybe_update' in str(info.value)


def test_create_train_op_clips_and_validates():
    with tf.Graph().as_default():
        weight = tf1.get_variable('w', [], initializer=tf1.constant_initializer(100.0))
        train_op = training.create_train_op(tf.square(weight), tf1.train.GradientDescentOptimizer(1.0),
                                            clip_gradient_norm=1.0)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train_op)
            assert sess.run(weight) == pytest.approx(99.0)
        with pytest.raises(ValueError, match=r'(?=.*clip_gradient_norm)(?=.*-1)'):
            training.create_train_op(tf.square(weight), tf1.train.GradientDescentOptimizer(1.0),
                                     clip_gradient_norm=-1)
        with pytest.raises(ValueError, match='optimizer=.*tf.compat.v1.train.Optimizer'):
            training.create_train_op(tf.square(weight), 'sgd')
        with pytest.raises(ValueError, match='total_loss=.*scalar'):
            training.create_train_op(tf.ones([3]) * weight, tf1.train.GradientDescentOptimizer(1.0))


def test_make_saver_refuses_trainable_only_and_saves_moving_statistics(tmp_path):
    with tf.Graph().as_default():
        images, labels, loss = _convnet_loss()
        train_op = training.create_train_op(loss, tf1.train.GradientDescentOptimizer(0.1))
        with pytest.raises(training.IncompleteSaverError, match='conv1/BatchNorm/moving_mean'):
            training.make_saver(tf1.trainable_variables())
        saver = training.make_saver()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train_op, _feed(images, labels))
            path = saver.save(sess, str(tmp_path / 'model.ckpt'), global_step=1)
    names = dict(tf.train.list_variables(path))
    assert 'SmallConvNet/conv1/BatchNorm/moving_mean' in names
    assert 'SmallConvNet/conv1/BatchNorm/moving_variance' in names
    assert 'global_step' in names
    reader = tf.train.load_checkpoint(path)
    assert np.any(reader.get_tensor('SmallConvNet/conv1/BatchNorm/moving_mean') != 0)
    assert np.any(reader.get_tensor('SmallConvNet/conv1/BatchNorm/moving_variance') != 1)


def test_variables_to_restore_excludes_scopes_and_maps_shadow_names():
    with tf.Graph().as_default():
        _convnet_loss(is_training=False)
        tf1.train.get_or_create_global_step()
        plain = training.variables_to_restore()
        assert 'SmallConvNet/logits/weights' in plain and 'global_step' in plain
        partial = training.variables_to_restore(exclude_scopes=['SmallConvNet/logits'])
        assert not any(name.startswith('SmallConvNet/logits/') for name in partial)
        assert 'SmallConvNet/conv1/weights' in partial
        averaged = training.variables_to_restore(moving_average_decay=0.99)
        assert averaged['SmallConvNet/conv1/weights/ExponentialMovingAverage'].op.name == \
            'SmallConvNet/conv1/weights'
        assert 'global_step' in averaged
        with pytest.raises(ValueError, match='exclude_scopes=.*list'):
            training.variables_to_restore(exclude_scopes='SmallConvNet/logits')
        with pytest.raises(ValueError, match=r'(?=.*moving_average_decay)(?=.*1\.5)'):
            training.variables_to_restore(moving_average_decay=1.5)
