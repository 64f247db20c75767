"""Every bad input to batch_norm is refused at graph-build time, with a clear message."""
import numpy as np
import pytest
import tensorflow as tf

import slimnorm


def _build(inputs=None, **kwargs):
    with tf.Graph().as_default():
        x = tf.zeros([2, 4, 4, 3]) if inputs is None else inputs()
        return slimnorm.batch_norm(x, **kwargs)


@pytest.mark.parametrize("inputs,kwargs,error,message", [
    (lambda: tf.compat.v1.placeholder(tf.float32), {}, ValueError, "undefined rank"),
    (lambda: tf.zeros([3]), {}, ValueError, r"rank 1 .*accepted ranks are \(2, 3, 4, 5\)"),
    (lambda: tf.zeros([1, 1, 1, 1, 1, 2]), {}, ValueError, "rank 6"),
    (lambda: tf.compat.v1.placeholder(tf.float32, [None, 4, 4, None]), {}, ValueError,
     "undefined channels dimension"),
    (lambda: tf.compat.v1.placeholder(tf.float32, [None, None, 4, 4]), {"data_format": "NCHW"},
     ValueError, r"undefined channels dimension \(axis 1"),
    (None, {"data_format": "NCWH"}, ValueError, r"data_format has to be either NCHW or NHWC .*got 'NCWH'"),
    (None, {"epsilon": -1e-3}, ValueError, "epsilon must be a number >= 0, got -0.001"),
    (None, {"epsilon": "small"}, ValueError, "epsilon must be a number >= 0, got 'small'"),
    (None, {"decay": 1.5}, ValueError, r"decay must be a number in \[0, 1\], got 1.5"),
    (None, {"renorm_decay": -0.1}, ValueError, "renorm_decay"),
    (None, {"is_training": tf.constant(1.0)}, TypeError, "dtype float32"),
    (lambda: tf.zeros([2, 3]), {"is_training": "yes"}, TypeError, "is_training must be a Python bool"),
    (None, {"renorm": True, "renorm_clipping": {"rmax": 3, "dmin": 1}}, ValueError,
     r"renorm_clipping has unknown keys \['dmin'\]"),
    (None, {"param_initializers": {"mean": tf.compat.v1.zeros_initializer()}}, ValueError,
     r"param_initializers has unknown keys \['mean'\]; accepted keys are \('beta', 'gamma'"),
    (None, {"param_regularizers": {"weights": None}}, ValueError, "param_regularizers"),
    (None, {"moving_variance_estimator": "sample"}, ValueError, "moving_variance_estimator"),
    (lambda: tf.zeros([2, 3], tf.int32), {}, TypeError, "floating-point"),
    (None, {"adjustment": 3}, TypeError, "adjustment must be None or a function of the input shape, got 3"),
    (None, {"batch_weights": np.ones(3, np.float32)}, ValueError, "batch_weights must have shape"),
])
def test_bad_input_is_refused(inputs, kwargs, error, message):
    with pytest.raises(error, match=message):
        _build(inputs, **kwargs)


def test_non_bool_placeholder_is_training():
    with tf.Graph().as_default():
        flag = tf.compat.v1.placeholder(tf.int32, [])
        with pytest.raises(TypeError, match="is_training must be a Python bool or a bool tensor"):
            slimnorm.batch_norm(tf.zeros([2, 3]), is_training=flag)


def test_reuse_with_a_different_channel_count():
    with tf.Graph().as_default():
        slimnorm.batch_norm(tf.zeros([2, 3]), scope="bn")
        with pytest.raises(ValueError, match=r"scope 'bn' was built for parameters of shape \[3\] "
                                             r"but is now reused with inputs that need shape \[5\]"):
            slimnorm.batch_norm(tf.zeros([2, 5]), scope="bn", reuse=True)


def test_no_variables_created_before_an_error():
    with tf.Graph().as_default():
        with pytest.raises(ValueError):
            slimnorm.batch_norm(tf.zeros([2, 3]), epsilon=-1.0)
        assert tf.compat.v1.global_variables() == []
