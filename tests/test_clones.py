"""slimnorm.train.clones: clones on 2 CPU devices of one session (ConfigProto.device_count)."""
import numpy as np
import pytest
import tensorflow as tf

from slimnorm.train import clones, loop
from slimnorm.train.config import EvalConfig, TrainConfig

tf1 = tf.compat.v1

DEPTHS = {'depths': [8, 16]}


def _batch(size=16):
    data = TrainConfig().load_data()
    return data.train_images[:size], data.train_labels[:size]


def _session(graph, num_devices=2):
    return tf1.Session(graph=graph, config=tf1.ConfigProto(device_count={'CPU': num_devices}))


def _gradients(config, images, labels, num_clones, values=None):
    """{variable name: gradient} of the total loss, on ``num_clones`` clones."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(1)
        x = tf1.placeholder(tf.float32, (None,) + images.shape[1:])
        y = tf1.placeholder(tf.int64, [None])
        if num_clones > 1:
            config.num_clones, config.clone_on_cpu = num_clones, True
            _, _, total = clones.build_classifier_clones(config, x, y, 10)
        else:
            logits, _ = config.build_logits(x, 10, is_training=True,
                                            weight_decay=config.weight_decay)
            tf1.losses.sparse_softmax_cross_entropy(y, logits)
            total = tf1.losses.get_total_loss()
        variables = tf1.trainable_variables()
        grads = tf1.gradients(total, variables, colocate_gradients_with_ops=True)
        with _session(graph) as sess:
            sess.run(tf1.global_variables_initializer())
            if values is not None:
                for var in variables:
                    var.load(values[var.op.name], sess)
            names = [v.op.name for v in variables]
            got = sess.run(grads, {x: images, y: labels})
            return dict(zip(names, got)), dict(zip(names, sess.run(variables)))


@pytest.mark.parametrize('normalizer', ['none', 'layer'])
def test_two_clones_on_halves_give_the_one_device_gradient_of_the_whole_batch(normalizer):
    # Without batch norm (or with a per-example normalizer) the clones' averaged
    # gradient must equal TensorFlow's gradient of the whole batch on one device.
    images, labels = _batch()
    config = TrainConfig(normalizer=normalizer, model_kwargs=DEPTHS, weight_decay=1e-3)
    cloned, values = _gradients(config, images, labels, num_clones=2)
    whole, _ = _gradients(TrainConfig(normalizer=normalizer, model_kwargs=DEPTHS,
                                      weight_decay=1e-3), images, labels, 1, values)
    assert sorted(cloned) == sorted(whole) and len(whole) >= 3
    for name in whole:
        np.testing.assert_allclose(cloned[name], whole[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    # ...and not the gradient of one half alone (the comparison can fail).
    half, _ = _gradients(TrainConfig(normalizer=normalizer, model_kwargs=DEPTHS,
                                     weight_decay=1e-3), images[:8], labels[:8], 1, values)
    name = 'SmallConvNet/conv1/weights'
    assert not np.allclose(half[name], whole[name], rtol=1e-3, atol=1e-5)


def test_only_clone_0_updates_the_moving_statistics_with_its_own_half():
    images, labels = _batch()
    config = TrainConfig(model_kwargs=DEPTHS, num_clones=2, clone_on_cpu=True,
                         learning_rate=0.01, lr_schedule='fixed')
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, (None,) + images.shape[1:])
        y = tf1.placeholder(tf.int64, [None])
        model = loop.build_train_graph(config, x, y, 10)
        update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        with graph.name_scope(None):
            moving_mean = [v for v in tf1.global_variables()
                           if v.op.name == 'SmallConvNet/conv1/BatchNorm/moving_mean'][0]
            weights = [v for v in tf1.global_variables()
                       if v.op.name == 'SmallConvNet/conv1/weights'][0]
        init = tf1.global_variables_initializer()
    assert model.update_op_count == len(update_ops) == 4  # 2 layers x (mean, variance)
    assert all(op.name.startswith('clone_0/') for op in update_ops), update_ops
    with _session(graph) as sess:
        sess.run(init)
        kernel = sess.run(weights)
        sess.run(model.train_op, {x: images, y: labels})
        got = sess.run(moving_mean)
    decay = 0.99  # small_convnet's BATCH_NORM_DEFAULTS
    # Reference: TensorFlow's own conv kernel on each half, in eager mode.
    halves = [tf.nn.conv2d(images[i * 8:(i + 1) * 8], kernel, 1, 'SAME').numpy()
              for i in range(2)]
    expected = (1 - decay) * halves[0].mean(axis=(0, 1, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert not np.allclose(got, (1 - decay) * halves[1].mean(axis=(0, 1, 2)), atol=1e-6)


def test_clone_ops_run_on_their_devices_and_know_their_replica_group():
    seen = []

    def model_fn(x):
        seen.append(clones.current_clone())
        w = tf1.get_variable('w', [3, 2])
        tf1.losses.add_loss(tf.reduce_sum(tf.matmul(x, w)))
        tf1.summary.scalar('x_mean', tf.reduce_mean(x))
        return tf.matmul(x, w)

    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [4, 3])
        built = clones.create_clones(model_fn, clones.clone_devices(2, clone_on_cpu=True),
                                     clones.split_batch([x], 2))
        total = clones.total_clone_loss(built)
        clones.drop_clone_summaries(built)
        summaries = [s.op.name for s in tf1.get_collection(tf1.GraphKeys.SUMMARIES)]
    assert summaries == ['clone_0/x_mean']
    assert clones.current_clone() is None
    assert [(c.index, c.num_clones) for c in seen] == [(0, 2), (1, 2)]
    assert [c.scope for c in built] == ['clone_0/', 'clone_1/']
    assert len(graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)) == 1  # shared
    assert graph.get_operation_by_name('w').device == '/device:CPU:0'
    assert built[1].outputs.op.device == '/device:CPU:1'
    with _session(graph) as sess:
        sess.run(tf1.global_variables_initializer())
        feed = np.arange(12, dtype=np.float32).reshape(4, 3)
        w = sess.run(graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)[0])
        # Each clone's loss is divided by the number of clones.
        np.testing.assert_allclose(sess.run(total, {x: feed}), (feed @ w).sum() / 2, rtol=1e-5)


def test_bad_clone_arguments_are_refused_with_their_values():
    with pytest.raises(ValueError, match='num_clones'):
        TrainConfig(num_clones=0).check()
    with pytest.raises(TypeError, match='clone_on_cpu'):
        TrainConfig(clone_on_cpu='yes').check()
    with tf.Graph().as_default(), pytest.raises(ValueError, match='inputs has 1 entries'):
        clones.create_clones(lambda: None, ['/device:CPU:0', '/device:CPU:1'], [()])


def test_two_clones_train_resume_and_evaluate(tmp_path):
    from slimnorm.train import evaluation
    config = TrainConfig(train_dir=str(tmp_path), num_clones=2, clone_on_cpu=True,
                         batch_size=32, max_steps=200, log_every_steps=100)
    first = loop.train(config, log=lambda line: None)
    assert first['global_step'] == 200
    config.max_steps = 300
    second = loop.train(config, log=lambda line: None)
    assert second['start_step'] == 200 and second['global_step'] == 300
    metrics = evaluation.evaluate(EvalConfig(), str(tmp_path))
    assert metrics['global_step'] == 300 and metrics['top1'] >= 0.95, metrics
