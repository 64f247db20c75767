"""Quantization-aware training of slim graphs: tf.contrib.quantize's API.

    logits, _ = network_fn(images)                 # built with is_training=True
    tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
    slimnorm.quantize.create_training_graph(quant_delay=2000)  # before the optimizer
    train_op = slimnorm.training.create_train_op(total_loss, optimizer)

    # evaluation / export: the same network built with is_training=False
    slimnorm.quantize.create_eval_graph()

The rewrite works on the built graph, as contrib's did (so research/slim's
networks and arg scopes need no edit): every convolution, depthwise
convolution and fully connected layer gets symmetric per-output-channel
8-bit weight fake quantization and a fake quantization of its output (after
its ReLU/ReLU6) with moving min/max ranges; a batch norm after such a layer
is folded into its weights (`slimnorm.quantize.rewrite` has the formulas).
Layers that cannot be folded are refused with a ValueError naming the layer.
The variables added (`<layer>/act_quant/{min,max}`,
`<layer>/weights_quant/{min,max}`) are global and model variables, so
checkpoints hold them beside slim's names. `docs/quantize.md` has the rest.

The quantization step is the global step (created if missing).
"""

from slimnorm import checks

__all__ = ['create_training_graph', 'create_eval_graph',
           'experimental_create_training_graph', 'experimental_create_eval_graph',
           'UnfoldableLayerError', 'rewritten_output']


QUANTIZABLE_NORMALIZERS = ('batch', 'none')


def check_train_config(config):
    """The quantize_delay of a TrainConfig: -1 (off) or a step, with what it supports."""
    checks.integer(config.quantize_delay, 'quantize_delay', minimum=-1)
    if not config.quantized:
        return
    if config.normalizer not in QUANTIZABLE_NORMALIZERS:
        raise ValueError(f'quantize_delay={config.quantize_delay} with normalizer='
                         f'{config.normalizer!r}; accepted: normalizer batch (folded into the '
                         'weights) or none')
    for name, default in (('num_clones', 1), ('sync_batch_norm', False),
                          ('freeze_batch_norm', False), ('job_name', '')):
        if getattr(config, name) != default:
            raise ValueError(f'quantize_delay={config.quantize_delay} with {name}='
                             f'{getattr(config, name)!r}; accepted: {name}={default!r} '
                             '(quantization-aware training rewrites one tower in one process)')


def __getattr__(name):
    if name == 'UnfoldableLayerError':
        from slimnorm.quantize.patterns import UnfoldableLayerError
        return UnfoldableLayerError
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def _graph(input_graph):
    import tensorflow as tf
    return input_graph if input_graph is not None else tf.compat.v1.get_default_graph()


def _check(quant_delay, freeze_bn_delay, weight_bits, activation_bits, symmetric, ema_decay):
    checks.integer(quant_delay, 'quant_delay', minimum=0)
    checks.optional_integer(freeze_bn_delay, 'freeze_bn_delay', minimum=0)
    checks.integer(weight_bits, 'weight_bits', minimum=2)
    checks.integer(activation_bits, 'activation_bits', minimum=2)
    for value, name in ((weight_bits, 'weight_bits'), (activation_bits, 'activation_bits')):
        if value > 8:
            raise ValueError(f'{name}={value!r}; accepted: 2 to 8 bits (the fake-quant ops\' range)')
    checks.boolean(symmetric, 'symmetric')
    checks.unit_interval(ema_decay, 'ema_decay')


def experimental_create_training_graph(input_graph=None, weight_bits=8, activation_bits=8,
                                       ema_decay=0.999, quant_delay=0, symmetric=False,
                                       scope=None, freeze_bn_delay=None):
    """Rewrites a training graph in place for quantization-aware training.

    Call it after the model and loss are built and before the optimizer
    computes gradients. Before ``quant_delay`` global steps the fake
    quantization passes values through (the ranges already move); from
    ``freeze_bn_delay`` on (None: never) batch norm uses its moving
    statistics, which stop updating. Returns the list of rewritten layers.
    """
    _check(quant_delay, freeze_bn_delay, weight_bits, activation_bits, symmetric, ema_decay)
    from slimnorm.quantize import rewrite
    return rewrite.rewrite(_graph(input_graph), True, quant_delay=quant_delay,
                           freeze_bn_delay=freeze_bn_delay, weight_bits=weight_bits,
                           activation_bits=activation_bits, symmetric=symmetric,
                           ema_decay=ema_decay, scope=scope)


def experimental_create_eval_graph(input_graph=None, weight_bits=8, activation_bits=8,
                                   symmetric=False, scope=None):
    """Rewrites an eval graph (built with is_training=False) in place."""
    _check(0, None, weight_bits, activation_bits, symmetric, 0.999)
    from slimnorm.quantize import rewrite
    return rewrite.rewrite(_graph(input_graph), False, weight_bits=weight_bits,
                           activation_bits=activation_bits, symmetric=symmetric, scope=scope)


def create_training_graph(input_graph=None, quant_delay=0, freeze_bn_delay=None):
    """contrib's create_training_graph: 8-bit weights and activations."""
    return experimental_create_training_graph(input_graph, quant_delay=quant_delay,
                                              freeze_bn_delay=freeze_bn_delay)


def create_eval_graph(input_graph=None):
    """contrib's create_eval_graph: 8-bit weights and activations, always on."""
    return experimental_create_eval_graph(input_graph)


def rewritten_output(layers, tensor):
    """The fake-quantized tensor that replaced ``tensor`` (a layer's output) in the rewrite.

    ``layers``: what create_training_graph/create_eval_graph returned. Tensors
    held before the rewrite (e.g. the logits a network returned) keep their
    float values; the graph's consumers read the quantized one, this returns it.
    """
    for layer in layers:
        if tensor.name in layer.replaced:
            return layer.output
    return tensor
