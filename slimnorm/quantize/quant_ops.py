"""Fake quantization of weights and activations, with contrib.quantize's names.

* Activations (`<layer>/act_quant/min`, `/max`): scalar variables, -6 and 6
  at first, moved each training step toward the batch's min and max by an
  exponential moving average (`v -= (v - batch) * (1 - ema_decay)`); the
  fake-quant op (`tf.quantization.fake_quant_with_min_max_vars`, 8 bits,
  wide range) reads the updated values. Before `quant_delay` the activation
  passes through unquantized while the ranges keep moving. Eval graphs read
  the variables only.
* Weights (`<layer>/weights_quant/min`, `/max`, one value per output
  channel): symmetric, the last value of max |w| per output channel
  (`fake_quant_with_min_max_vars_per_channel`, narrow range: int8 -127..127).
  Eval graphs compute the same range from the (frozen) weights and create no
  variables.

The fake-quant ops' gradients are TensorFlow's straight-through estimators;
no gradient reaches the range variables.
"""

import tensorflow as tf

tf1 = tf.compat.v1

INIT_MIN, INIT_MAX = -6.0, 6.0
# Keeps the per-channel range of an all-zero channel non-empty (min == max
# makes the quantization scale 0).
MIN_WEIGHT_RANGE = 1e-8


def _range_variable(name, shape, value):
    return tf1.get_variable(
        name, shape=shape, dtype=tf.float32, initializer=tf1.constant_initializer(value),
        trainable=False,
        collections=[tf1.GraphKeys.GLOBAL_VARIABLES, tf1.GraphKeys.MODEL_VARIABLES])


def _ema_update(variable, value, decay):
    delta = (tf.convert_to_tensor(variable) - value) * (1.0 - decay)
    return tf.convert_to_tensor(variable.assign_sub(delta))


def _delayed(quantized, inputs, step, quant_delay):
    """``quantized`` once ``step >= quant_delay``; ``inputs`` before."""
    if not quant_delay or step is None:
        return quantized
    active = tf.greater_equal(step, tf.cast(quant_delay, step.dtype), name='quant_active')
    return tf.where(active, quantized, inputs, name='delayed_quant')


def activation_quantize(inputs, scope, *, is_training, step=None, quant_delay=0,
                        ema_decay=0.999, num_bits=8, symmetric=False):
    """Fake-quantizes ``inputs`` with moving min/max variables under ``scope``."""
    with tf1.variable_scope(scope):
        min_var = _range_variable('min', [], INIT_MIN)
        max_var = _range_variable('max', [], INIT_MAX)
        if is_training:
            low = _ema_update(min_var, tf.reduce_min(inputs, name='BatchMin'), ema_decay)
            high = _ema_update(max_var, tf.reduce_max(inputs, name='BatchMax'), ema_decay)
        else:
            low, high = tf.convert_to_tensor(min_var), tf.convert_to_tensor(max_var)
        if symmetric:
            high = tf.maximum(-low, high)
            low = -high
        quantized = tf.quantization.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=num_bits, narrow_range=False, name='FakeQuant')
        return _delayed(quantized, inputs, step if is_training else None, quant_delay)


def _per_channel_2d(weights, op_type):
    """[rows, output channels] view of a weight tensor; depthwise: in * multiplier."""
    if op_type == 'DepthwiseConv2dNative':
        kh, kw, cin, mult = weights.shape
        return tf.reshape(weights, [kh * kw, cin * mult])
    return tf.reshape(weights, [-1, weights.shape[-1]])


def weight_quantize(weights, scope, op_type, *, is_training, step=None, quant_delay=0,
                    num_bits=8):
    """Symmetric per-output-channel fake quantization of ``weights``."""
    with tf1.variable_scope(scope):
        channels = _per_channel_2d(weights, op_type).shape[-1]
        if is_training:  # first: op names are unique case-insensitively ('Max' takes 'max')
            min_var = _range_variable('min', [channels], INIT_MIN)
            max_var = _range_variable('max', [channels], INIT_MAX)
        flat = _per_channel_2d(weights, op_type)
        high = tf.maximum(tf.reduce_max(tf.abs(flat), axis=0), MIN_WEIGHT_RANGE)
        low = -high
        if is_training:
            low = tf.convert_to_tensor(min_var.assign(low))
            high = tf.convert_to_tensor(max_var.assign(high))
        quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            flat, low, high, num_bits=num_bits, narrow_range=True, name='FakeQuant')
        quantized = tf.reshape(quantized, weights.shape.as_list())
        return _delayed(quantized, weights, step if is_training else None, quant_delay)
