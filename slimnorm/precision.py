"""Mixed precision for Session code: bfloat16 on CPUs, float16 on GPUs.

    import slimnorm
    precision = slimnorm.precision
    precision.check('bfloat16')                      # ValueError (one line) if this machine cannot
    config = precision.session_config('bfloat16')    # a ConfigProto with the rewrite switched on
    optimizer = precision.loss_scale_optimizer(optimizer, 'float16')  # loss scaling (float16 only)
    train_op = slimnorm.training.create_train_op(total_loss, optimizer)
    with tf.compat.v1.Session(config=config) as sess: ...
    slim.learning.train(train_op, logdir, session_config=config)     # the same for slim's loop

The network is not changed: TensorFlow's grappler rewrites the graph when the
Session first runs it, casting the inputs of the ops it knows to be fast and
safe in 16 bits (convolutions, matrix products) and of the ops that follow
them (adds, activations, fused batch norm, ...) and casting back where a
float32 op comes. What stays float32:

- variables (weights, batch-norm ``moving_mean``/``moving_variance``,
  optimizer slots, ``ExponentialMovingAverage`` shadows), so checkpoints are
  float32 and interchange between precisions: a bfloat16 run's checkpoint
  evaluates in float32 and the other way round;
- the gradient updates (the optimizer reads a float32 gradient, cast back
  from the 16-bit one);
- batch statistics: ``FusedBatchNormV3`` takes 16-bit inputs but returns its
  mean and variance in float32; slimnorm's group/layer/instance norm kernels
  (``SlimnormGroupNorm``) read and write 16 bits and accumulate in float32
  with float64 sums; the loss (softmax cross-entropy is on the rewrite's
  deny list).

bfloat16 (``auto_mixed_precision_onednn_bfloat16``) needs a CPU with BF16
instructions (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo); without them
oneDNN emulates bfloat16 and it is slower than float32, so it is refused.
It has float32's exponent range: no loss scaling. float16
(``auto_mixed_precision``, the CUDA rewrite) needs a GPU, and float16's
small range needs loss scaling: ``loss_scale_optimizer`` wraps the optimizer
in TensorFlow's ``MixedPrecisionLossScaleOptimizer`` with a dynamic loss
scale (the loss is multiplied by the scale before the gradients, they are
divided by it after, a step with inf/NaN gradients is skipped and halves the
scale, 2000 finite steps double it).

slimnorm's kernels are put on the rewrite's infer list (through TensorFlow's
``TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_INFERLIST_ADD``, read by the rewrite
each time it runs), so a group/layer/instance norm after a convolution stays
in 16 bits instead of casting to float32 and back.

This module imports TensorFlow only inside the functions that build protos
or optimizers: the command lines check ``--mixed_precision`` with it before
TensorFlow loads.
"""
import os

from slimnorm.choices import MIXED_PRECISIONS

BFLOAT16, FLOAT16, NONE = 'bfloat16', 'float16', 'none'
# /proc/cpuinfo flags that make bfloat16 fast: AVX512-BF16 (conversions and
# dot products, Intel Cooper Lake and later, AMD Zen 4 and later) and AMX-BF16
# (tile matrix multiply, Intel Sapphire Rapids and later).
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
REPORTED_FLAGS = ('avx512f', 'avx512_bf16', 'avx512_vnni', 'avx512_fp16', 'amx_tile',
                  'amx_bf16', 'amx_int8')
# The ops of slimnorm's kernels (slimnorm/kernels/group_norm.cc): registered
# for bfloat16 and float16, arithmetic in float32.
KERNEL_OPS = ('SlimnormGroupNorm', 'SlimnormGroupNormGrad')
INFERLIST_ENV = 'TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_INFERLIST_ADD'
CPUINFO = '/proc/cpuinfo'


def cpu_info(path=CPUINFO):
    """``(model name, set of flags)`` of the first CPU in ``path`` (empty if unreadable)."""
    model, flags = '', set()
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and not model:
                    model = value.strip()
                elif key == 'flags' and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def machine(path=CPUINFO):
    """What the result files record: the CPU model and its BF16/AMX flags."""
    model, flags = cpu_info(path)
    return {'cpu_model': model or 'unknown',
            'cpu_flags': {flag: flag in flags for flag in REPORTED_FLAGS},
            'bf16_instructions': any(flag in flags for flag in BF16_FLAGS),
            'nvidia_gpu_visible': nvidia_gpu_visible()}


def nvidia_gpu_visible():
    """Whether an NVIDIA GPU is visible to this process, without importing TensorFlow.

    The driver lists its GPUs under /proc/driver/nvidia/gpus and creates
    /dev/nvidia0, /dev/nvidia1, ... (containers may show only the latter);
    CUDA_VISIBLE_DEVICES set to '' or -1 hides them.
    """
    import glob
    hidden = os.environ.get('CUDA_VISIBLE_DEVICES')
    if hidden is not None and hidden.strip() in ('', '-1'):
        return False
    try:
        if os.listdir('/proc/driver/nvidia/gpus'):
            return True
    except OSError:
        pass
    return bool(glob.glob('/dev/nvidia[0-9]*'))


def unavailable_reason(precision, path=CPUINFO):
    """None if ``precision`` runs fast here, else one sentence saying why not."""
    if precision == BFLOAT16:
        model, flags = cpu_info(path)
        if not any(flag in flags for flag in BF16_FLAGS):
            return (f'this CPU ({model or "model unknown"}) has no BF16 instructions '
                    f'({" or ".join(BF16_FLAGS)} in {path}), where bfloat16 is emulated '
                    'and slower than float32')
    elif precision == FLOAT16:
        if not nvidia_gpu_visible():
            return ('no NVIDIA GPU is visible (float16 needs one: on a CPU float16 is '
                    'emulated in float32 and slower)')
    return None


def _check_name(precision, arg='mixed_precision'):
    if precision not in MIXED_PRECISIONS:
        raise ValueError(f'{arg}={precision!r}; accepted: {", ".join(MIXED_PRECISIONS)}')


def check(precision, arg='mixed_precision', path=CPUINFO):
    """Returns ``precision`` if it is accepted and this machine runs it; else one-line ValueError."""
    _check_name(precision, arg)
    reason = unavailable_reason(precision, path)
    if reason:
        raise ValueError(f'{arg}={precision!r}: {reason}; accepted: none'
                         + (', bfloat16' if precision == FLOAT16
                            and unavailable_reason(BFLOAT16, path) is None else ''))
    return precision


def downgrade(precision, log=print, path=CPUINFO):
    """``precision`` if this machine runs it, else 'none' after one logged line saying why."""
    _check_name(precision)
    reason = unavailable_reason(precision, path)
    if reason is None:
        return precision
    log(f'mixed_precision={precision}: {reason}; running in float32')
    return NONE


def register_kernels():
    """Puts slimnorm's kernel ops on the rewrite's infer list (an environment variable).

    The rewrite reads the variable each time it optimizes a graph, so this
    works for Sessions created after it. Idempotent; keeps what the user
    set there.
    """
    present = [name for name in os.environ.get(INFERLIST_ENV, '').split(',') if name]
    missing = [name for name in KERNEL_OPS if name not in present]
    if missing:
        os.environ[INFERLIST_ENV] = ','.join(present + missing)


def session_config(precision, config=None, float16_on_cpu=False):
    """A ConfigProto (a copy of ``config``, or a new one) with ``precision``'s rewrite on.

    ``'none'`` returns the copy unchanged. ``float16_on_cpu=True`` turns on
    TensorFlow's float16 emulation on CPU (``auto_mixed_precision_cpu``:
    float16 inputs and outputs, float32 arithmetic) instead of the CUDA
    rewrite: for testing the float16 graph where no GPU is; it is not fast.
    Does not check the machine: call :func:`check` first.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import rewriter_config_pb2
    _check_name(precision)
    result = tf.compat.v1.ConfigProto()
    if config is not None:
        result.CopyFrom(config)
    on = rewriter_config_pb2.RewriterConfig.ON
    rewrites = result.graph_options.rewrite_options
    if precision == BFLOAT16:
        register_kernels()
        rewrites.auto_mixed_precision_onednn_bfloat16 = on
    elif precision == FLOAT16:
        register_kernels()
        if float16_on_cpu:
            rewrites.auto_mixed_precision_cpu = on
        else:
            rewrites.auto_mixed_precision = on
    return result


def loss_scale_optimizer(optimizer, precision, loss_scale='dynamic'):
    """``optimizer`` wrapped for ``precision``: loss scaling for float16, else unchanged.

    ``loss_scale``: 'dynamic' (start at 2**15, halve on a step with inf/NaN
    gradients, which is skipped, double after 2000 good steps) or a number
    (a fixed scale). The wrapper is a ``tf.compat.v1.train.Optimizer``:
    ``slimnorm.training.create_train_op`` and tf-slim's take it as any other.
    """
    _check_name(precision)
    if precision != FLOAT16:
        return optimizer
    import tensorflow as tf
    mp = tf.compat.v1.mixed_precision
    if isinstance(optimizer, mp.MixedPrecisionLossScaleOptimizer):
        return optimizer
    if loss_scale == 'dynamic':
        scale = mp.DynamicLossScale()
    elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool) \
            and loss_scale > 0:
        scale = mp.FixedLossScale(float(loss_scale))
    else:
        raise ValueError(f"loss_scale={loss_scale!r}; accepted: 'dynamic' or a number > 0")
    return mp.MixedPrecisionLossScaleOptimizer(optimizer, scale)


def loss_scale(optimizer):
    """The current loss-scale tensor of a wrapped optimizer, or None."""
    get = getattr(optimizer, '_loss_scale', None)
    return get() if callable(get) else None
