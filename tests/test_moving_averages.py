"""slimnorm.moving_averages vs the numpy reference, for resource and ref variables."""
import numpy as np
import pytest
import tensorflow as tf

from slimnorm import reference as ref
from slimnorm.moving_averages import assign_moving_average, zero_debias_variables


@pytest.mark.parametrize("use_resource", [True, False])
@pytest.mark.parametrize("decay", [0.9, 0.999])
def test_assign_moving_average_steps(use_resource, decay):
    values = np.random.default_rng(0).normal(size=(5, 3))
    with tf.Graph().as_default():
        var = tf.compat.v1.get_variable("avg", initializer=np.ones(3), use_resource=use_resource)
        value = tf.compat.v1.placeholder(tf.float64, [3])
        update = assign_moving_average(var, value, decay)
        assert update.op.name == "AssignMovingAvg"
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            expected = np.ones(3)
            for v in values:
                got = sess.run(update, {value: v})
                expected = ref.moving_average(expected, v, decay)
                # The returned tensor is the new value, i.e. read after the update.
                np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_decay_as_tensor():
    with tf.Graph().as_default():
        var = tf.compat.v1.get_variable("avg", initializer=np.zeros(2, np.float32))
        update = assign_moving_average(var, tf.ones(2), tf.constant(0.75))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            np.testing.assert_allclose(sess.run(update), 0.25)


@pytest.mark.parametrize("use_resource", [True, False])
def test_zero_debias_is_exact_from_the_first_step(use_resource):
    values = np.random.default_rng(1).normal(4, 1, size=(4, 2))
    with tf.Graph().as_default():
        with tf.compat.v1.variable_scope("s"):
            var = tf.compat.v1.get_variable("m", initializer=np.zeros(2), use_resource=use_resource)
            debias = zero_debias_variables(var)
            value = tf.compat.v1.placeholder(tf.float64, [2])
            update = assign_moving_average(var, value, 0.99, debias=debias)
        assert [v.op.name for v in debias] == ["s/s/m/biased", "s/s/m/local_step"]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for t in range(1, len(values) + 1):
                got = sess.run(update, {value: values[t - 1]})
                np.testing.assert_allclose(
                    got, ref.zero_debiased_moving_average(values[:t], 0.99), rtol=1e-10)
        np.testing.assert_allclose(ref.zero_debiased_moving_average(values[:1], 0.99), values[0])
