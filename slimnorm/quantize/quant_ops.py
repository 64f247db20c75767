"""Fake quantization of weights and activations, with contrib.quantize's names.

* Activations (`<layer>/act_quant/min`, `/max`): scalar variables, -6 and 6
  at first, set to the first training batch's min and max, then moved each
  training step toward the batch's by an exponential moving average
  (`v -= (v - batch) * (1 - ema_decay)`); the
  fake-quant op (`tf.quantization.fake_quant_with_min_max_vars`, 8 bits,
  wide range) reads the updated values. Before `quant_delay` the activation
  passes through unquantized while the ranges keep moving. Eval graphs read
  the variables only.
* Weights (`<layer>/weights_quant/min`, `/max`): symmetric, the last value
  of max |w|, narrow range (int8 -127..127); one value per output channel
  for convolutions and depthwise convolutions
  (`fake_quant_with_min_max_vars_per_channel`), one per tensor for fully
  connected layers (TFLite's fully connected kernel transposes the weights
  and its converter refuses a per-channel axis there).
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


def _ema_update(variable, value, decay, first):
    """v -= (v - value) * (1 - decay); v = value outright on the first update."""
    current = tf.convert_to_tensor(variable)
    delta = tf.where(first, current - value, (current - value) * (1.0 - decay))
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
            # Ranges still at their initial (-6, 6) take the first batch's
            # range: an average from +-6 at decay 0.999 takes thousands of
            # steps to reach activations of size 0.1.
            first = tf.logical_and(tf.equal(tf.convert_to_tensor(min_var), INIT_MIN),
                                   tf.equal(tf.convert_to_tensor(max_var), INIT_MAX))
            batch_min = tf.reduce_min(inputs, name='BatchMin')
            batch_max = tf.reduce_max(inputs, name='BatchMax')
            with tf.control_dependencies([first]):
                low = _ema_update(min_var, batch_min, ema_decay, first)
                high = _ema_update(max_var, batch_max, ema_decay, first)
        else:
            low, high = tf.convert_to_tensor(min_var), tf.convert_to_tensor(max_var)
        if symmetric:
            high = tf.maximum(-low, high)
            low = -high
        quantized = tf.quantization.fake_quant_with_min_max_vars(
            inputs, low, high, num_bits=num_bits, narrow_range=False, name='FakeQuant')
        return _delayed(quantized, inputs, step if is_training else None, quant_delay)


def _per_channel_view(weights, op_type):
    """The weights with output channels last, as the per-channel fake-quant op takes them.

    Conv2D [kh, kw, in, out] and MatMul [in, out] already are; depthwise
    [kh, kw, in, multiplier] becomes [kh, kw, 1, in * multiplier] (output
    channel c = i * multiplier + m), a view TFLite's converter accepts.
    """
    if op_type == 'DepthwiseConv2dNative':
        kh, kw, cin, mult = weights.shape.as_list()
        return tf.reshape(weights, [kh, kw, 1, cin * mult])
    return weights


def weight_quantize(weights, scope, op_type, *, is_training, step=None, quant_delay=0,
                    num_bits=8):
    """Symmetric fake quantization of ``weights``: per output channel for
    convolutions, per tensor for fully connected layers (MatMul)."""
    per_channel = op_type != 'MatMul'
    with tf1.variable_scope(scope):
        shape = []
        if per_channel:
            shape = [weights.shape[-1] * (weights.shape[-2] if op_type ==
                                          'DepthwiseConv2dNative' else 1)]
        if is_training:  # first: op names are unique case-insensitively ('Max' takes 'max')
            min_var = _range_variable('min', shape, INIT_MIN)
            max_var = _range_variable('max', shape, INIT_MAX)
        view = _per_channel_view(weights, op_type)
        rows = list(range(view.shape.rank - 1)) if per_channel else None
        high = tf.maximum(tf.reduce_max(tf.abs(view), axis=rows), MIN_WEIGHT_RANGE)
        low = -high
        if is_training:
            low = tf.convert_to_tensor(min_var.assign(low))
            high = tf.convert_to_tensor(max_var.assign(high))
        fake_quant = (tf.quantization.fake_quant_with_min_max_vars_per_channel if per_channel
                      else tf.quantization.fake_quant_with_min_max_vars)
        quantized = fake_quant(view, low, high, num_bits=num_bits, narrow_range=True,
                               name='FakeQuant')
        if view is not weights:
            quantized = tf.reshape(quantized, weights.shape.as_list())
        return _delayed(quantized, weights, step if is_training else None, quant_delay)
