"""The graph rewrite: fold batch norm into the weights, insert fake quantization.

For a layer `conv -> batch norm -> activation` (Jacob et al. 2018, section
3.2; the white paper's training form), with sigma = sqrt(moving_variance +
eps), sigma_B and mu_B the batch's standard deviation and mean of the
convolution's output:

    w_fold = w * gamma / sigma                      (per output channel)
    z      = conv(x, fake_quant(w_fold))
    training, before freeze_bn_delay:
        y = z * (sigma / sigma_B) + (beta - gamma * mu_B / sigma_B)
    training after freeze_bn_delay, and eval graphs:
        y = z + (beta - gamma * moving_mean / sigma)

Before quantization starts `fake_quant` is the identity, so y equals batch
norm's training output (the correction sigma / sigma_B undoes the moving
sigma in w_fold), and its gradients equal batch norm's: mu_B and sigma_B are
taken of the original convolution's output with `tf.nn.moments`-style
shifted moments, which stays in the graph (contrib did the same). The
original batch norm op stays too: it still feeds the moving-average updates,
which are zeroed once `freeze_bn_delay` is reached. Consumers of batch norm's
output are rerouted to y; the layer's activation (or y itself) is followed
by the activation fake-quant, and its consumers are rerouted to it.
"""

import tensorflow as tf

from slimnorm import batch_norm_paths
from slimnorm.quantize import patterns, quant_ops

tf1 = tf.compat.v1


def _reroute(old, new, consumers):
    """Points the data inputs of ``consumers`` that read ``old`` at ``new``."""
    for op in consumers:
        for index, tensor in enumerate(op.inputs):
            if tensor.name == old.name:
                op._update_input(index, new)  # noqa: SLF001 (TF's graph-editing hook)


def _clone_weighted(op, inputs, weights, name):
    """The op ``op`` again (same type and attributes) on new inputs."""
    attrs = {a.name: op.get_attr(a.name) for a in op.op_def.attr if a.type != 'type'}
    first, second = (arg.name for arg in op.op_def.input_arg[:2])
    return getattr(tf.raw_ops, op.type)(**{first: inputs, second: weights}, name=name, **attrs)


def _channel_view(vector, rank, data_format):
    """A per-channel vector shaped to broadcast over the layer's output."""
    if rank == 4 and data_format == 'NCHW':
        return tf.reshape(vector, [-1, 1, 1])
    return vector


def _scale_weights(weights, scale, op_type):
    if op_type == 'DepthwiseConv2dNative':  # output channel = input * multiplier + m
        return weights * tf.reshape(scale, weights.shape[2:].as_list())
    return weights * scale


def _moving_variables(graph, layer):
    """(moving_mean, moving_variance) variables of the layer's batch norm, from its updates."""
    names = {}
    for name in layer.batch_norm.moving_updates:
        for kind in ('moving_mean', 'moving_variance'):
            if name.endswith('/' + kind):
                names[kind] = name
    if len(names) != 2:
        patterns.refuse(layer.scope, f'its batch norm {layer.batch_norm.scope} has no '
                        'moving-average updates v -= (v - value) * (1 - decay) of moving_mean '
                        'and moving_variance; accepted: batch norm without '
                        'zero_debias_moving_mean')
    found = {v.op.name: v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
    return [(names[kind], found[names[kind]]) for kind in ('moving_mean', 'moving_variance')]


class _Settings:
    def __init__(self, is_training, quant_delay, freeze_bn_delay, weight_bits,
                 activation_bits, symmetric, ema_decay):
        self.is_training = is_training
        self.quant_delay = quant_delay
        self.freeze_bn_delay = freeze_bn_delay
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.symmetric = symmetric
        self.ema_decay = ema_decay
        self.step = None
        self.frozen = None


def _weight_scope(layer, shared):
    # contrib's name; a separable convolution's two weights get their own.
    name = 'weights_quant' if not shared else layer.weight_name + '_quant'
    return f'{layer.scope}/{name}'


def _quantize_weights(layer, weights, settings, shared):
    return quant_ops.weight_quantize(
        weights, _weight_scope(layer, shared), layer.op.type,
        is_training=settings.is_training, step=settings.step,
        quant_delay=settings.quant_delay, num_bits=settings.weight_bits)


def _freeze_updates(graph, layer, settings):
    """Zeroes the moving-average steps of the layer's batch norm once frozen."""
    bn = layer.batch_norm
    for name, _ in _moving_variables(graph, layer):
        assign = bn.moving_updates[name]
        delta = assign.inputs[1]
        with tf1.name_scope(bn.scope + '/freeze/'):
            kept = tf.where(settings.frozen, tf.zeros_like(delta), delta)
        assign._update_input(1, kept)  # noqa: SLF001


def _fold(graph, layer, settings, shared):
    """Builds the folded layer; returns its output (batch norm's replacement)."""
    bn = layer.batch_norm
    conv = layer.op
    conv_out = conv.outputs[0]
    rank = conv_out.shape.rank
    data_format = bn.fused.get_attr('data_format').decode()
    if rank == 2:
        data_format = 'NHWC'
    gamma, beta = bn.fused.inputs[1], bn.fused.inputs[2]
    if settings.is_training:
        moving_mean, moving_variance = (tf.convert_to_tensor(variable)
                                        for _, variable in _moving_variables(graph, layer))
    else:
        moving_mean, moving_variance = bn.fused.inputs[3], bn.fused.inputs[4]
    with tf1.name_scope(bn.scope + '_Fold/'):
        sigma = tf.sqrt(moving_variance + bn.epsilon, name='moving_std')
        folded = _scale_weights(conv.inputs[1], gamma / sigma, conv.type)
    weights = _quantize_weights(layer, folded, settings, shared)
    with tf1.name_scope(bn.scope + '_Fold/'):
        z = _clone_weighted(conv, conv.inputs[0], weights, name='folded_' + conv.type)
        moving_bias = beta - gamma * moving_mean / sigma
        if not settings.is_training:
            return tf.add(z, _channel_view(moving_bias, rank, data_format), name='add_fold')
        axis = batch_norm_paths.channel_axis(data_format, rank)
        mean, variance = batch_norm_paths.moments(conv_out, axis)
        batch_sigma = tf.sqrt(variance + bn.epsilon, name='batch_std')
        correction = tf.identity(sigma / batch_sigma, name='correction_scale')
        bias = beta - gamma * mean / batch_sigma
        if settings.frozen is not None:
            correction = tf.where(settings.frozen, tf.ones_like(correction), correction)
            bias = tf.where(settings.frozen, moving_bias, bias)
        return tf.add(z * _channel_view(correction, rank, data_format),
                      _channel_view(bias, rank, data_format), name='add_fold')


def rewrite(graph, is_training, *, quant_delay=0, freeze_bn_delay=None, weight_bits=8,
            activation_bits=8, symmetric=False, ema_decay=0.999, scope=None):
    """Rewrites ``graph`` in place; returns the layers (patterns.Layer) it changed.

    Raises:
      ValueError: a layer that cannot be quantized (one line naming it), a
        graph quantized already, or no layer found.
    """
    settings = _Settings(is_training, quant_delay, freeze_bn_delay, weight_bits,
                         activation_bits, symmetric, ema_decay)
    with graph.as_default():
        done = [v.op.name for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
                if v.op.name.endswith('/act_quant/min')]
        if done:
            raise ValueError(f'the graph is quantized already (it holds {done[0]}); '
                             'accepted: a graph not yet rewritten')
        layers = patterns.find_layers(graph, is_training, scope)
        if not layers:
            raise ValueError(f'found no convolution or fully connected layer with weights '
                             f'to quantize (scope={scope!r}); accepted: a graph of slim layers')
        if is_training:
            with tf1.name_scope(None):
                settings.step = tf.convert_to_tensor(
                    tf1.train.get_or_create_global_step(), name='quant_step')
                if freeze_bn_delay is not None:
                    settings.frozen = tf.greater_equal(
                        settings.step, tf.cast(freeze_bn_delay, settings.step.dtype),
                        name='freeze_batch_norm')
        per_scope = {}
        for layer in layers:
            per_scope[layer.scope] = per_scope.get(layer.scope, 0) + 1
        with tf1.name_scope(None):
            for layer in layers:
                _rewrite_layer(graph, layer, settings, per_scope[layer.scope] > 1)
    return layers


def _rewrite_layer(graph, layer, settings, shared):
    out = layer.output
    replaced = (out.name,)
    out_consumers = list(out.consumers())
    bn = layer.batch_norm
    if bn is not None:
        bn_consumers = list(bn.output.consumers())
        if settings.frozen is not None:
            _freeze_updates(graph, layer, settings)
        folded = _fold(graph, layer, settings, shared)
        _reroute(bn.output, folded, bn_consumers)
        if out.name == bn.output.name:
            out = folded
    else:
        weights = _quantize_weights(layer, layer.op.inputs[1], settings, shared)
        layer.op._update_input(1, weights)  # noqa: SLF001
    if not layer.quantize_output:
        return
    quantized = quant_ops.activation_quantize(
        out, layer.scope + '/act_quant', is_training=settings.is_training,
        step=settings.step, quant_delay=settings.quant_delay, ema_decay=settings.ema_decay,
        num_bits=settings.activation_bits, symmetric=settings.symmetric)
    _reroute(out, quantized, out_consumers)
    layer.output = quantized
    layer.replaced = replaced + (out.name,)
