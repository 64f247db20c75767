"""`batch_norm`: tf-slim's batch norm, rebuilt on `tf.nn` for TensorFlow 2.21.

How it differs from `tf_slim.batch_norm` 1.1 (which no longer runs):
  * same signature, defaults, variable names, op names and collections, plus
    one keyword, `moving_variance_estimator`;
  * one implementation instead of slim's three divergent ones: the fused
    kernel whenever it can compute the answer, the moments path otherwise,
    both behind the same variables, updates and training-flag handling;
  * bad arguments fail here, at graph-build time, with the argument named.

Variables, under `<scope>/BatchNorm/` (or `<scope>/` when `scope` is given):
  beta (if center), gamma (if scale): trainable model variables, shape [C];
  moving_mean, moving_variance: non-trainable model variables, also in
  MOVING_AVERAGE_VARIABLES, never partitioned;
  renorm_mean, renorm_stddev when `renorm`; moving_mean/biased and
  moving_mean/local_step when `zero_debias_moving_mean` (TF's placement).

What happens to the statistics:

  is_training          updates_collections   normalises with   moving averages
  -------------------  --------------------  ----------------  -------------------------
  True                 UPDATE_OPS (default)  batch moments     2 ops added to UPDATE_OPS:
                                                               run them with the train op
  True                 None                  batch moments     updated in place: the output
                                                               depends on the updates
  False                any                   moving averages   untouched, no ops
  bool tensor          as above              tf.cond on it     ops as above, but they only
                                                               assign when it is True
"""

import tensorflow as tf
import tf_slim as slim

from slimnorm import batch_norm_paths as paths
from slimnorm import batch_renorm, checks, variables
from slimnorm.moving_averages import assign_moving_average, zero_debias_variables

PARAM_KEYS = ("beta", "gamma", "moving_mean", "moving_variance")
VARIANCE_ESTIMATORS = ("slim", "unbiased", "biased")
SUPPORTED_RANKS = (2, 3, 4, 5)


@slim.add_arg_scope
def batch_norm(inputs,
               decay=0.999,
               center=True,
               scale=False,
               epsilon=0.001,
               activation_fn=None,
               param_initializers=None,
               param_regularizers=None,
               updates_collections=tf.compat.v1.GraphKeys.UPDATE_OPS,
               is_training=True,
               reuse=None,
               variables_collections=None,
               outputs_collections=None,
               trainable=True,
               batch_weights=None,
               fused=None,
               data_format="NHWC",
               zero_debias_moving_mean=False,
               scope=None,
               renorm=False,
               renorm_clipping=None,
               renorm_decay=0.99,
               adjustment=None,
               moving_variance_estimator="slim"):
    """Batch normalization (Ioffe & Szegedy 2015), a drop-in for slim.batch_norm.

    Args:
      inputs: float tensor of rank 2 to 5, static rank and channel dimension.
      decay: moving-average decay in [0, 1]; lower it (0.9) for short runs.
      center, scale: create beta / gamma. scale=False suits a following ReLU.
      epsilon: > 0, added to the variance. The fused kernel raises it to 1.001e-5.
      activation_fn: applied to the output, e.g. tf.nn.relu.
      param_initializers, param_regularizers: dicts keyed by 'beta', 'gamma',
        'moving_mean', 'moving_variance'.
      updates_collections: where the moving-average update ops go; None runs
        them in place (simpler, slightly slower).
      is_training: Python bool, or a scalar bool tensor (tf.cond is built).
      reuse, scope, trainable, variables_collections (list, or dict keyed by
        variable name), outputs_collections: as in every slim layer.
      batch_weights: [N] weights of the examples in the batch statistics.
      fused: None/True use the fused kernel whenever it applies (rank 2 or 4,
        no batch_weights, renorm or adjustment); False forces the moments path.
      data_format: 'NHWC' (channels last) or 'NCHW' (channels on axis 1).
      zero_debias_moving_mean: debias the moving mean (Kingma & Ba 2015).
      renorm, renorm_clipping ({'rmax', 'rmin', 'dmax'}), renorm_decay: batch
        renormalization (Ioffe 2017), see `slimnorm.batch_renorm`.
      adjustment: fn(tf.shape(inputs)) -> (scale, bias) applied to the
        normalised values in training only.
      moving_variance_estimator: 'slim' (default) stores what slim stored: the
        unbiased batch variance on the fused path, the biased one on the
        moments path (tensorflow issue 55545). 'unbiased' or 'biased' make
        both paths store that estimator.

    Returns:
      A tensor of the shape and dtype of `inputs`.
    """
    inputs = tf.convert_to_tensor(inputs)
    rank = checks.rank(inputs, SUPPORTED_RANKS)
    checks.data_format(data_format)
    epsilon = checks.positive(epsilon, "epsilon")
    checks.unit_interval(decay, "decay")
    checks.unit_interval(renorm_decay, "renorm_decay")
    training = checks.training_flag(is_training)
    initializers = checks.dict_keys(param_initializers, PARAM_KEYS, "param_initializers")
    regularizers = checks.dict_keys(param_regularizers, PARAM_KEYS, "param_regularizers")
    clipping = checks.dict_keys(renorm_clipping, batch_renorm.CLIPPING_KEYS, "renorm_clipping")
    checks.one_of(moving_variance_estimator, VARIANCE_ESTIMATORS, "moving_variance_estimator")
    if adjustment is not None and not callable(adjustment):
        raise TypeError("adjustment must be None or a callable taking the input shape, "
                        "got %r." % (adjustment,))
    axis = paths.channel_axis(data_format, rank)
    channels = checks.axis_dim(inputs, axis)
    dtype = checks.param_dtype(inputs)
    if batch_weights is not None:
        batch_weights = _check_batch_weights(batch_weights, inputs)
    use_fused = (fused is None or bool(fused)) and rank in (2, 4) and (
        batch_weights is None and not renorm and adjustment is None) and (
        inputs.dtype.base_dtype in paths.FUSED_DTYPES)

    with tf.compat.v1.variable_scope(scope, "BatchNorm", [inputs], reuse=reuse) as sc:
        def param(name, init, trainable_, partitioned=True, extra=()):
            return variables.parameter(
                name, [channels], dtype, initializers, regularizers, variables_collections,
                trainable_, init, partitioned=partitioned, extra_collections=extra)

        beta = param("beta", variables.ZEROS, trainable) if center else None
        gamma = param("gamma", variables.ONES, trainable) if scale else None
        averages = (tf.compat.v1.GraphKeys.MOVING_AVERAGE_VARIABLES,)
        moving_mean = param("moving_mean", variables.ZEROS, False, False, averages)
        moving_variance = param("moving_variance", variables.ONES, False, False, averages)
        renorm_vars = (batch_renorm.create_variables(channels, dtype, variables_collections)
                       if renorm and training is not False else None)
        debias = (zero_debias_variables(moving_mean)
                  if zero_debias_moving_mean and training is not False else None)

        beta_t = None if beta is None else variables.as_tensor(beta)
        gamma_t = None if gamma is None else variables.as_tensor(gamma)
        if use_fused:
            beta_t = tf.zeros([channels], dtype) if beta_t is None else beta_t
            gamma_t = tf.ones([channels], dtype) if gamma_t is None else gamma_t

        def infer():
            mean, variance = tf.convert_to_tensor(moving_mean), tf.convert_to_tensor(moving_variance)
            if use_fused:
                return paths.fused_inference(inputs, gamma_t, beta_t, mean, variance, epsilon,
                                             data_format, rank)
            return paths.moments_normalize(inputs, mean, variance, beta_t, gamma_t, epsilon,
                                           axis, rank, dtype, inputs.dtype)

        def train():
            """(outputs, batch mean, variance for the moving average, the path's own variance).

            The last one feeds batch renorm only, which always takes the
            moments path, where that variance is the biased one it needs.
            """
            if use_fused:
                y, mean, variance = paths.fused_train(inputs, gamma_t, beta_t, epsilon,
                                                      data_format, rank)
                unbiased = True
            else:
                x, mean, variance, shift = paths.shifted_moments(inputs, axis, rank, dtype,
                                                                 batch_weights)
                y = _transformed_normalize(x, mean, variance, shift, beta_t, gamma_t, epsilon,
                                           axis, rank, adjustment, renorm_vars, clipping,
                                           inputs.dtype)
                mean = mean + shift
                unbiased = False
            count = paths.values_per_channel(inputs, axis, rank, dtype)
            moving = paths.convert_variance(variance, count, unbiased, moving_variance_estimator)
            return y, mean, moving, variance

        if training is False:
            outputs = infer()
        else:
            if training is True:
                outputs, mean, variance, batch_variance = train()
            else:
                outputs, mean, variance, batch_variance = tf.cond(
                    training, train,
                    lambda: (infer(), tf.convert_to_tensor(moving_mean),
                             tf.convert_to_tensor(moving_variance),
                             tf.convert_to_tensor(moving_variance)))

            def update():
                renorm_updates = []
                if renorm_vars is not None:
                    # r and d must read the renorm averages before they move;
                    # the renorm updates ride on the two usual ops, as in slim.
                    with tf.control_dependencies([outputs]):
                        renorm_updates = batch_renorm.updates(*renorm_vars, mean, batch_variance,
                                                              epsilon, renorm_decay)
                with tf.control_dependencies(renorm_updates):
                    return [assign_moving_average(moving_mean, mean, decay, debias=debias),
                            assign_moving_average(moving_variance, variance, decay)]

            if training is True:
                update_ops = update()
            else:
                update_ops = tf.cond(training, update, lambda: [
                    tf.identity(tf.convert_to_tensor(moving_mean)),
                    tf.identity(tf.convert_to_tensor(moving_variance))])
            if updates_collections is None:
                with tf.control_dependencies(update_ops):
                    outputs = tf.identity(outputs)
            else:
                for op in update_ops:
                    tf.compat.v1.add_to_collections(updates_collections, op)
        outputs.set_shape(inputs.shape)
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, outputs)


def _transformed_normalize(x, mean, variance, shift, beta, gamma, epsilon, axis, rank,
                           adjustment, renorm_vars, clipping, out_dtype):
    """Moments-path training output with renorm's (r, d) and `adjustment` folded in.

    `x` and `mean` are shifted by `shift` (see paths.shifted_moments).
    Composition, innermost first: x_hat -> x_hat * r + d -> * adj_scale + adj_bias
    -> * gamma + beta, folded into one scale and offset.
    """
    dtype = x.dtype
    if adjustment is None:
        scale, offset = gamma, beta
        if renorm_vars is not None:
            r, d = batch_renorm.correction(mean + shift, variance, epsilon, *renorm_vars,
                                              clipping)
            scale, offset = _compose(r, d, scale, offset)
        return paths.moments_normalize(x, mean, variance, offset, scale, epsilon,
                                       axis, rank, dtype, out_dtype)
    # `adjustment` may return any shape that broadcasts against the inputs, so
    # compose in the inputs' own layout rather than per channel.
    def b(param):
        return paths.broadcast(param, rank, axis)

    adj_scale, adj_bias = adjustment(tf.shape(x))
    scale, offset = _compose(tf.cast(adj_scale, dtype), tf.cast(adj_bias, dtype), b(gamma), b(beta))
    if renorm_vars is not None:
        r, d = batch_renorm.correction(mean + shift, variance, epsilon, *renorm_vars, clipping)
        scale, offset = _compose(b(r), b(d), scale, offset)
    x_hat = tf.nn.batch_normalization(x, b(mean), b(variance), None, None, epsilon)
    return tf.cast(x_hat * scale + offset, out_dtype)


def _compose(first_scale, first_offset, then_scale, then_offset):
    """(x * first_scale + first_offset) * then_scale + then_offset as one affine map."""
    scale, offset = first_scale, first_offset
    if then_scale is not None:
        scale, offset = scale * then_scale, offset * then_scale
    if then_offset is not None:
        offset = offset + then_offset
    return scale, offset


def _check_batch_weights(batch_weights, inputs):
    batch_weights = tf.convert_to_tensor(batch_weights)
    if batch_weights.shape.rank not in (None, 1) or not batch_weights.shape[:1].is_compatible_with(
            inputs.shape[:1]):
        raise ValueError("batch_weights must have shape [batch] = %s, got %s." % (
            inputs.shape[:1], batch_weights.shape))
    return batch_weights


def batch_norm_layer(x, is_training, scope="bn", decay=0.9, epsilon=1e-3,
                     updates_collections=None, data_format="NHWC", reuse=None, **kwargs):
    """The seeds' recipe: BN with learnable beta and gamma and in-place updates.

    tf.nn.moments statistics, moving averages with `decay`, tf.cond on a
    tensor training flag, variables directly under `scope` (scope/beta,
    scope/gamma, scope/moving_mean, scope/moving_variance). The moving
    variance is the biased one, as tf.nn.moments gives it, whichever kernel
    runs. A thin front on `batch_norm`; extra keyword arguments pass through.
    """
    kwargs.setdefault("moving_variance_estimator", "biased")
    return batch_norm(x, decay=decay, center=True, scale=True, epsilon=epsilon,
                      is_training=is_training, updates_collections=updates_collections,
                      data_format=data_format, reuse=reuse, scope=scope, **kwargs)
