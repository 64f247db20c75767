"""nets.inception_v2 and checkpoints: slim's layout restores, ours round-trips.

Both restores use a plain `tf.compat.v1.train.Saver`, as a user of slim's
public checkpoint would.
"""


import numpy as np
import tensorflow as tf
import tf_slim as slim

from nets import inception_v2 as iv2

from reference_lists import VARIABLES_TSV, read_reference

tf1 = tf.compat.v1


def build_eval_net(images):
    with slim.arg_scope(iv2.inception_v2_arg_scope()):
        logits, _ = iv2.inception_v2(images, num_classes=1001,
                                     is_training=False)
    return logits


def test_a_checkpoint_in_slim_layout_restores_every_value(tmp_path):
    rows = read_reference(VARIABLES_TSV)
    rng = np.random.RandomState(0)
    values = {name: rng.standard_normal(shape).astype(np.float32)
              for name, shape in rows}
    # The checkpoint: exactly the reference variables, made without our net.
    with tf.Graph().as_default():
        for name, _ in rows:
            tf1.get_variable(name, initializer=values[name])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            path = tf1.train.Saver().save(sess, str(tmp_path / 'slim.ckpt'))
    with tf.Graph().as_default():
        build_eval_net(tf1.placeholder(tf.float32, [1, 224, 224, 3]))
        ours = {v.op.name: v for v in tf1.global_variables()}
        assert sorted(ours) == sorted(values)
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, path)
            restored = sess.run(ours)
    for name, value in values.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)


def test_our_checkpoint_reproduces_the_eval_logits(tmp_path):
    rng = np.random.RandomState(1)
    images = rng.uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    with tf.Graph().as_default():
        tf1.set_random_seed(1)
        logits = build_eval_net(tf.constant(images))
        # Non-trivial moving statistics and offsets: a checkpoint that
        # dropped them would give other logits.
        randomize = tf.group(*[
            v.assign(tf1.random_uniform(v.shape, 0.5, 2.0)
                     if v.op.name.endswith('moving_variance')
                     else tf1.random_normal(v.shape, 0.0, 0.1))
            for v in tf1.global_variables()
            if v.op.name.endswith(('moving_mean', 'moving_variance', 'beta'))])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(randomize)
            expected = sess.run(logits)
            path = tf1.train.Saver().save(sess, str(tmp_path / 'ours.ckpt'))
    with tf.Graph().as_default():
        tf1.set_random_seed(2)
        logits = build_eval_net(tf.constant(images))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            before = sess.run(logits)
            tf1.train.Saver().restore(sess, path)
            after = sess.run(logits)
    assert np.abs(before - expected).max() > 1e-3
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)
