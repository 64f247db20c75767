"""Finding the layers of a built graph that quantization rewrites.

A *layer* is one op with weights (Conv2D, DepthwiseConv2dNative, MatMul)
reading a variable, as slim's conv2d, separable_conv2d and fully_connected
build it, then optionally batch norm (`<layer>/BatchNorm/...`, slimnorm's or
tf-slim's fused form), a bias add and a ReLU or ReLU6. Everything is found by
op types and slim's scope names, so networks need no edit.

What cannot be folded is refused here, with the layer's name, before the graph
is changed: a batch norm whose input is not a weighted op, a batch norm not on
TensorFlow's fused kernel (batch renorm, batch weights, virtual batches,
`adjustment`, or an `is_training` tensor, whose branches live in functions), a
weighted op followed by group, layer or instance norm, a batch norm of the
other mode than the rewrite's (training graph vs eval graph).
"""

import dataclasses

import tensorflow as tf

WEIGHTED_TYPES = ('Conv2D', 'DepthwiseConv2dNative', 'MatMul')
ACTIVATION_TYPES = ('Relu', 'Relu6')
VARIABLE_TYPES = ('VarHandleOp', 'VariableV2', 'Variable')
FUSED_PREFIX = 'FusedBatchNorm'
UNFOLDABLE_NORMS = ('GroupNorm', 'LayerNorm', 'InstanceNorm')


class UnfoldableLayerError(ValueError):
    """A layer pattern quantization cannot rewrite; the message names the layer."""


@dataclasses.dataclass
class BatchNormMatch:
    """A fused batch norm after a weighted op."""
    scope: str
    fused: tf.Operation
    output: tf.Tensor           # what the layer's next op reads
    is_training: bool
    epsilon: float
    # Ops writing moving_mean / moving_variance (training graphs), by variable name.
    moving_updates: dict


@dataclasses.dataclass
class Layer:
    """One weighted op and what follows it in its layer."""
    scope: str                  # slim's layer scope, e.g. 'MobilenetV1/Conv2d_0'
    op: tf.Operation            # Conv2D, DepthwiseConv2dNative or MatMul
    weight_name: str            # the variable's base name: weights, depthwise_weights, ...
    batch_norm: BatchNormMatch = None
    output: tf.Tensor = None    # the layer's last tensor (after activation), quantized
    quantize_output: bool = True
    # Names of the float tensors the rewrite replaced by `output`.
    replaced: tuple = ()


def _variable_op(tensor):
    """The variable op a weight tensor reads, or None."""
    op = tensor.op
    while op.type in ('ReadVariableOp', 'Identity') and op.inputs:
        op = op.inputs[0].op
    return op if op.type in VARIABLE_TYPES else None


def refuse(layer, why):
    raise UnfoldableLayerError(f'cannot quantize layer {layer!r}: {why}')


def _scope_ops(graph, scope):
    prefix = scope + '/'
    return [op for op in graph.get_operations() if op.name.startswith(prefix)]


def _match_batch_norm(graph, layer, bn_scope, conv_out, is_training):
    ops = _scope_ops(graph, bn_scope)
    inside = set(ops)
    fused = [op for op in ops if op.type.startswith(FUSED_PREFIX)]
    if len(fused) != 1:
        refuse(layer, f'its batch norm {bn_scope} is not one TensorFlow fused batch norm '
                '(found %d); accepted: batch norm with fused kernel and a Python bool '
                'is_training (no renorm, batch_weights, virtual_batch_size, adjustment '
                'or is_training tensor)' % len(fused))
    fused = fused[0]
    if any(c not in inside for c in conv_out.consumers()):
        refuse(layer, f'{conv_out.name} is read by batch norm and by other ops; accepted: '
                'batch norm as its only reader')
    outputs = {t for op in ops for t in op.outputs
               if any(c not in inside for c in t.consumers())}
    if len(outputs) != 1:
        refuse(layer, f'its batch norm {bn_scope} has {len(outputs)} outputs read outside '
                'it; accepted: one')
    mode = fused.get_attr('is_training')
    if mode != is_training:
        wanted = 'training' if is_training else 'eval'
        refuse(layer, f'its batch norm {bn_scope} is built with is_training={mode}, but '
                f'this is the {wanted} rewrite; accepted: create_training_graph on a '
                'graph built with is_training=True, create_eval_graph with False')
    updates = {}
    for op in ops:
        if op.type in ('AssignSubVariableOp', 'AssignSub'):
            variable = _variable_op(op.inputs[0])
            if variable is not None:
                updates[variable.name] = op
    return BatchNormMatch(bn_scope, fused, outputs.pop(), mode, fused.get_attr('epsilon'),
                          updates)


def _norm_scope(op_name):
    """'<...>/BatchNorm' of an op inside a batch norm scope, else None."""
    full = '/' + op_name
    index = full.rfind('/BatchNorm/')
    return None if index < 0 else full[1:index + len('/BatchNorm')]


def _single_consumer(tensor, types):
    consumers = tensor.consumers()
    if len(consumers) == 1 and consumers[0].type in types:
        return consumers[0]
    return None


def _in_scope(name, scope):
    return scope is None or name.startswith(scope.rstrip('/') + '/')


def find_layers(graph, is_training, scope=None):
    """Every weighted layer of ``graph`` (under ``scope``); refuses what cannot fold.

    Raises:
      UnfoldableLayerError (a ValueError): one line naming the layer.
    """
    layers = []
    for op in graph.get_operations():
        if op.type not in WEIGHTED_TYPES or not _in_scope(op.name, scope):
            continue
        variable = _variable_op(op.inputs[1])
        if variable is None:
            continue  # a product of two activations, not a layer
        layer_scope, _, weight_name = variable.name.rpartition('/')
        if op.type == 'MatMul' and (op.get_attr('transpose_b') or op.get_attr('transpose_a')):
            refuse(layer_scope, 'its MatMul transposes an operand; accepted: '
                    'fully_connected as slim builds it')
        layers.append(Layer(layer_scope, op, weight_name))
    by_op = {layer.op: layer for layer in layers}
    for layer in layers:
        out = layer.op.outputs[0]
        consumers = out.consumers()
        for consumer in consumers:
            for norm in UNFOLDABLE_NORMS:
                if f'/{norm}/' in '/' + consumer.name:
                    refuse(layer.scope, f'it is followed by {norm}, whose statistics are '
                            'per example and cannot be folded into the weights; accepted: '
                            'batch norm or no normalizer')
        # Op names may differ from variable names (slim's MobileNet builds its
        # ops under 'MobilenetV1/MobilenetV1/...'): the batch norm is found
        # from the op that reads the convolution.
        bn_scopes = {_norm_scope(c.name) for c in consumers} - {None}
        if len(bn_scopes) == 1:
            layer.batch_norm = _match_batch_norm(graph, layer.scope, bn_scopes.pop(), out,
                                                 is_training)
            out = layer.batch_norm.output
        else:
            bias = _single_consumer(out, ('BiasAdd',))
            if bias is not None:
                out = bias.outputs[0]
            else:
                following = _single_consumer(out, WEIGHTED_TYPES)
                if following in by_op and by_op[following].scope == layer.scope:
                    # The depthwise half of a separable convolution: its output
                    # feeds the pointwise half directly.
                    layer.quantize_output = False
        activation = _single_consumer(out, ACTIVATION_TYPES)
        if activation is not None:
            out = activation.outputs[0]
        layer.output = out
    _check_unique_weights(layers)
    _check_batch_norms_matched(graph, layers, scope)
    return layers


def _check_unique_weights(layers):
    scopes = {}
    for layer in layers:
        scopes.setdefault(layer.scope, []).append(layer)
    for group in scopes.values():
        names = [layer.weight_name for layer in group]
        if len(set(names)) != len(names):
            refuse(group[0].scope, 'its weights are used by %d ops (a shared layer); '
                    'accepted: one op per weight variable' % len(names))


def _check_batch_norms_matched(graph, layers, scope):
    """A batch norm after something other than a weighted layer cannot fold."""
    matched = {layer.batch_norm.scope for layer in layers if layer.batch_norm}
    for op in graph.get_operations():
        if not (op.type.startswith(FUSED_PREFIX) and _in_scope(op.name, scope)):
            continue
        bn_scope = op.name.rpartition('/')[0]
        if bn_scope not in matched:
            source = op.inputs[0].op
            if source.type in WEIGHTED_TYPES:
                refuse(bn_scope, f'this batch norm after {source.name} is not named '
                       '<layer>/BatchNorm; accepted: batch norm as the normalizer_fn of '
                       'slim.conv2d, separable_conv2d or fully_connected')
            refuse(bn_scope.rpartition('/')[0] or bn_scope,
                    f'its batch norm {bn_scope} reads {source.type} {source.name}, not a '
                    'convolution, depthwise convolution or fully connected layer; '
                    'accepted: batch norm right after one of these')
