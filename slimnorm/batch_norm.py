"""`batch_norm`: tf-slim's batch norm, rebuilt on `tf.nn` for TensorFlow 2.21.

How it differs from `tf_slim.batch_norm` 1.1 (which no longer runs):
  * same signature, defaults, variable names, op names and collections, plus
    one keyword, `moving_variance_estimator`;
  * one implementation instead of slim's three divergent ones: the fused
    kernel whenever it can compute the answer, the moments path otherwise,
    both behind the same variables, updates and training-flag handling;
  * bad arguments fail here, at graph-build time, with the argument named.

Variables, under `<scope>/BatchNorm/` (or `<scope>/` when `scope` is given),
created in the order and dtype slim's code path for the same arguments
created them, so position-based weight loaders and half-precision
checkpoints written by slim code carry over (see `slim_layout`):
  beta (if center), gamma (if scale): trainable model variables, shape [C];
  moving_mean, moving_variance: non-trainable model variables, never
  partitioned, and (as in slim) not in MOVING_AVERAGE_VARIABLES, so
  `ExponentialMovingAverage.variables_to_restore()` restores them as they are;
  moving_stddev, renorm_mean, renorm_stddev when `renorm`, in eval graphs
  too (see `slimnorm.batch_renorm`); moving_mean/biased and
  moving_mean/local_step when `zero_debias_moving_mean` (TF's placement).
Only the first four go to `variables_collections`; on slim's Keras-layer
path in the order slim added them: moving_mean, moving_variance, beta, gamma.

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
  trainable=False on slim's Keras-layer path (default updates_collections, no
  batch_weights or zero-debias): batch moments in training, but no update
  ops at all, as that layer had none when not trainable.
"""

from typing import NamedTuple

import tensorflow as tf
import tf_slim as slim

from slimnorm import batch_norm_paths as paths
from slimnorm import (
    batch_renorm,
    checks,
    ghost_batch,
    replicas,
    statistics,
    sync_batch_norm,
    variables,
)
from slimnorm.moving_averages import assign_moving_average, zero_debias_variables

PARAM_KEYS = ("beta", "gamma", "moving_mean", "moving_variance")
REGULARIZED_KEYS = ("beta", "gamma")
# The keys `variables_collections` may use: slim put only these four in the
# user's collections (never the renorm or zero-debias variables).
VARIABLE_NAMES = PARAM_KEYS
VARIANCE_ESTIMATORS = ("slim", "unbiased", "biased")
SUPPORTED_RANKS = (2, 3, 4, 5)


class BatchStatistics(NamedTuple):
    """What one training step computes: the output and the moving-average targets."""
    outputs: tf.Tensor
    mean: tf.Tensor                # batch mean, the moving mean's target
    moving_variance: tf.Tensor     # batch variance as `moving_variance_estimator` stores it
    biased_variance: tf.Tensor     # the moments path's own variance (batch renorm uses it)


def slim_layout(*, fused, rank, batch_weights, renorm, adjustment, zero_debias,
                updates_collections):
    """Which of tf-slim 1.1's three code paths the same arguments would take.

    'fused' (its `_fused_batch_norm`), 'layer' (its Keras-layer path) or
    'legacy'. It decides only what users can observe of slim's graph: the
    variables' creation order (the layer creates gamma first), their dtype
    (the legacy path uses the input's, half precision included), whether the
    zero-debias variables are model variables (only the legacy path's custom
    getter makes them so) and whether the updates collection receives
    operations (the layer) or tensors. Which kernel runs is slimnorm's own
    choice.
    """
    # `is not`, as slim compared: an equal string built at run time (from a
    # flag or a config file) is another object and takes the other paths.
    default_updates = updates_collections is tf.compat.v1.GraphKeys.UPDATE_OPS
    fusable = batch_weights is None and not renorm and rank in (2, 4) and adjustment is None
    if (fused is None or fused) and fusable and (zero_debias or rank == 2 or not default_updates):
        return "fused"
    if batch_weights is None and not zero_debias and default_updates:
        return "layer"
    return "legacy"


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
               moving_variance_estimator="slim",
               virtual_batch_size=None,
               sync_replicas=False):
    """Batch normalization (Ioffe & Szegedy 2015), a drop-in for slim.batch_norm.

    Args:
      inputs: float tensor of rank 2 to 5, static rank and channel dimension.
      decay: moving-average decay in [0, 1]; lower it (0.9) for short runs.
      center, scale: create beta / gamma. scale=False suits a following ReLU.
      epsilon: >= 0, added to the variance, on every path as given (TF 2.21's
        fused kernel, and so slim on it, no longer raises it to 1.001e-5).
      activation_fn: applied to the output, e.g. tf.nn.relu.
      param_initializers: dict keyed by 'beta', 'gamma', 'moving_mean',
        'moving_variance'; param_regularizers: dict keyed by 'beta', 'gamma'.
      updates_collections: where the moving-average update ops go; None runs
        them in place (simpler, slightly slower).
      is_training: Python bool, or a scalar bool tensor (tf.cond is built).
      reuse, scope, trainable, variables_collections (list, or dict keyed by
        variable name), outputs_collections: as in every slim layer.
      batch_weights: [N] weights of the examples in the batch statistics.
      fused: None/True use the fused kernel where slim did (rank 2 or 4, and
        rank 5 on its Keras-layer path; no batch_weights, renorm or
        adjustment); False forces the moments path.
      data_format: 'NHWC' (channels last) or 'NCHW' (channels on axis 1).
      zero_debias_moving_mean: debias the moving mean (Kingma & Ba 2015).
      renorm, renorm_clipping ({'rmax', 'rmin', 'dmax'}), renorm_decay: batch
        renormalization (Ioffe 2017), see `slimnorm.batch_renorm`.
      adjustment: fn(tf.shape(inputs)) -> (scale, bias) applied to the
        normalised values in training only.
      moving_variance_estimator: 'slim' (default) stores what slim stored: the
        unbiased batch variance where slim ran the fused kernel, the biased
        one on its moments path (tensorflow issue 55545). 'unbiased' or
        'biased' make both paths store that estimator.
      virtual_batch_size: ghost batch norm (see `slimnorm.ghost_batch`): in
        training, each run of this many examples is normalised with its own
        statistics; it must divide the batch size. None: the whole batch.
      sync_replicas: synchronized (cross-replica) batch norm (see
        `slimnorm.sync_batch_norm`): in training, the statistics are those of
        the batches of all replicas of the enclosing `slimnorm.replica_group`
        together; the moving averages, the same on every replica, move
        towards them. Inference is unchanged.

    Returns:
      A tensor of the shape and dtype of `inputs`.
    """
    inputs = tf.convert_to_tensor(inputs)
    checks.data_format(data_format)
    rank = checks.rank(inputs, SUPPORTED_RANKS)
    epsilon = checks.non_negative(epsilon, "epsilon")
    checks.unit_interval(decay, "decay")
    checks.unit_interval(renorm_decay, "renorm_decay")
    training = checks.training_flag(is_training)
    initializers = checks.dict_keys(param_initializers, PARAM_KEYS, "param_initializers")
    regularizers = checks.dict_keys(param_regularizers, REGULARIZED_KEYS, "param_regularizers")
    checks.collections(variables_collections, VARIABLE_NAMES)
    clipping = batch_renorm.check_clipping(renorm_clipping)
    checks.one_of(moving_variance_estimator, VARIANCE_ESTIMATORS, "moving_variance_estimator")
    checks.optional_callable(adjustment, "adjustment", "a function of the input shape")
    axis = paths.channel_axis(data_format, rank)
    channels = checks.axis_dim(inputs, axis)
    dtype = checks.param_dtype(inputs)     # of the statistics and the arithmetic
    if batch_weights is not None:
        batch_weights = _check_batch_weights(batch_weights, inputs)
    ghost = ghost_batch.check(virtual_batch_size, inputs, renorm=renorm, adjustment=adjustment)
    sync_group = sync_batch_norm.check(sync_replicas, training=training,
                                       batch_weights=batch_weights, renorm=renorm,
                                       adjustment=adjustment,
                                       virtual_batch_size=virtual_batch_size)
    layout = slim_layout(fused=fused, rank=rank, batch_weights=batch_weights, renorm=renorm,
                         adjustment=adjustment, zero_debias=zero_debias_moving_mean,
                         updates_collections=updates_collections)
    variable_dtype = inputs.dtype.base_dtype if layout == "legacy" else dtype
    # slim's Keras layer ran rank 4 and 5 through the kernel, its fused function rank 2 and 4.
    use_fused = (fused is None or bool(fused)) and (
        rank in ((4, 5) if layout == "layer" else (2, 4))) and (
        batch_weights is None and not renorm and adjustment is None) and (
        inputs.dtype.base_dtype in paths.FUSED_DTYPES)
    # 'slim': the estimator slim stored for these arguments (the kernel's unbiased one).
    estimator = moving_variance_estimator if moving_variance_estimator != "slim" else (
        "unbiased" if use_fused else "biased")
    # slim's Keras layer collected no updates when not trainable: its averages stay put.
    updates_wanted = trainable or layout != "layer"

    with tf.compat.v1.variable_scope(scope, "BatchNorm", [inputs], reuse=reuse) as sc:
        sync_seed = None if sync_group is None else replicas.layer_key(sync_group, sc.name)
        # slim's Keras-layer path added the four to the user's collections after
        # building, moving statistics first; its other paths as it created them.
        collections_now = None if layout == "layer" else variables_collections

        def param(name, init, trainable_, partitioned=True):
            return variables.parameter(
                name, [channels], variable_dtype, initializers, regularizers,
                collections_now, trainable_, init, partitioned=partitioned)

        # beta/gamma in the order slim's path for these arguments created them.
        wanted = {"beta": (center, variables.ZEROS), "gamma": (scale, variables.ONES)}
        order = ("gamma", "beta") if layout == "layer" else ("beta", "gamma")
        affine = {name: param(name, wanted[name][1], trainable)
                  for name in order if wanted[name][0]}
        beta, gamma = affine.get("beta"), affine.get("gamma")
        moving_mean = param("moving_mean", variables.ZEROS, False, partitioned=False)
        moving_variance = param("moving_variance", variables.ONES, False, partitioned=False)
        # In the statistics' dtype: slim's legacy path, the one with half-precision
        # variables, had no batch renorm, so there is no slim dtype to follow.
        # Created in eval graphs too, as slim did: they restore the same checkpoint.
        moving_stddev, renorm_vars = None, None
        if renorm:
            moving_stddev, *renorm_vars = batch_renorm.create_variables(channels, dtype,
                                                                        initializers)
        if layout == "layer":
            for name, variable in (("moving_mean", moving_mean), ("moving_variance",
                                   moving_variance), ("beta", beta), ("gamma", gamma)):
                variables.add_to_collections(variable, variables_collections, name)
        debias = (zero_debias_variables(moving_mean, model_variables=layout == "legacy")
                  if zero_debias_moving_mean and training is not False else None)

        beta_t = None if beta is None else variables.as_tensor(beta, dtype)
        gamma_t = None if gamma is None else variables.as_tensor(gamma, dtype)
        if use_fused:
            beta_t = tf.zeros([channels], dtype) if beta_t is None else beta_t
            gamma_t = tf.ones([channels], dtype) if gamma_t is None else gamma_t

        def infer():
            mean = variables.as_tensor(moving_mean, dtype)
            variance = variables.as_tensor(moving_variance, dtype)
            if use_fused:
                return paths.fused_inference(inputs, mean=mean, variance=variance, beta=beta_t,
                                             gamma=gamma_t, epsilon=epsilon,
                                             data_format=data_format)
            return paths.normalize(tf.cast(inputs, dtype), mean=mean, variance=variance,
                                   epsilon=epsilon, axis=axis, scale=gamma_t, offset=beta_t,
                                   out_dtype=inputs.dtype)

        def train():
            if sync_group is not None:
                return _sync_train(inputs, sync_group, sync_seed, fused=use_fused, axis=axis,
                                   dtype=dtype, beta=beta_t, gamma=gamma_t, epsilon=epsilon,
                                   data_format=data_format, estimator=estimator)
            if ghost is not None:
                return _ghost_train(inputs, ghost, fused=use_fused and ghost_batch.fusable(inputs),
                                    axis=axis, dtype=dtype, beta=beta_t, gamma=gamma_t,
                                    epsilon=epsilon, data_format=data_format,
                                    batch_weights=batch_weights,
                                    estimator=estimator)
            if use_fused:
                y, mean, variance = paths.fused_train(inputs, beta=beta_t, gamma=gamma_t,
                                                      epsilon=epsilon, data_format=data_format)
                unbiased = True
            else:
                x = tf.cast(inputs, dtype)
                mean, variance = paths.moments(x, axis, batch_weights)
                scale_, offset = paths.training_transforms(
                    x, axis=axis, mean=mean, variance=variance, beta=beta_t, gamma=gamma_t,
                    epsilon=epsilon, adjustment=adjustment, renorm_vars=renorm_vars,
                    clipping=clipping)
                y = paths.normalize(x, mean=mean, variance=variance, epsilon=epsilon,
                                    axis=axis, scale=scale_, offset=offset,
                                    out_dtype=inputs.dtype)
                unbiased = False
            count = statistics.count(inputs, [a for a in range(rank) if a != axis], dtype)
            moving = paths.convert_variance(variance, count, unbiased, estimator)
            return BatchStatistics(y, mean, moving, variance)

        def frozen():
            """The eval branch of tf.cond: outputs from, and targets equal to, the averages."""
            mean = variables.as_tensor(moving_mean, dtype)
            variance = variables.as_tensor(moving_variance, dtype)
            return BatchStatistics(infer(), mean, variance, variance)

        if training is False:
            outputs = infer()
        elif not updates_wanted:
            outputs = (train() if training is True else tf.cond(training, train, frozen)).outputs
        else:
            batch = train() if training is True else tf.cond(training, train, frozen)
            outputs = batch.outputs

            def update():
                renorm_updates = []
                if renorm_vars is not None:
                    # r and d must read the renorm averages before they move;
                    # the renorm updates ride on the two usual ops, as in slim.
                    with tf.control_dependencies([outputs]):
                        renorm_updates = batch_renorm.updates(
                            *renorm_vars, batch.mean, batch.biased_variance, epsilon,
                            renorm_decay)
                with tf.control_dependencies(renorm_updates):
                    mean_update = assign_moving_average(moving_mean, batch.mean, decay,
                                                        debias=debias)
                    if moving_stddev is not None:
                        return [mean_update, batch_renorm.variance_update(
                            moving_variance, moving_stddev, batch.moving_variance, epsilon,
                            decay)]
                    return [mean_update,
                            assign_moving_average(moving_variance, batch.moving_variance, decay)]

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
                # What slim collected: its Keras-layer path the update operations,
                # its other paths the updated values (tensors).
                for update in update_ops:
                    tf.compat.v1.add_to_collections(
                        updates_collections, update.op if layout == "layer" else update)
        outputs.set_shape(inputs.shape)
        if activation_fn is not None:
            outputs = activation_fn(outputs)
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, outputs)


def _ghost_train(inputs, size, *, fused, axis, dtype, beta, gamma, epsilon, data_format,
                 batch_weights, estimator):
    """Training with virtual batches: BatchStatistics with their averaged statistics."""
    if fused:
        y, mean, variance = ghost_batch.fused_train(inputs, size=size, beta=beta, gamma=gamma,
                                                    epsilon=epsilon, data_format=data_format)
    else:
        y, mean, variance = ghost_batch.moments_train(
            tf.cast(inputs, dtype), size=size, axis=axis, batch_weights=batch_weights,
            beta=beta, gamma=gamma, epsilon=epsilon, out_dtype=inputs.dtype)
    count = ghost_batch.values_per_channel(inputs, axis, size, dtype)
    moving = paths.convert_variance(variance, count, fused, estimator)
    return BatchStatistics(y, mean, moving, variance)


def _sync_train(inputs, group, seed, *, fused, axis, dtype, beta, gamma, epsilon, data_format,
                estimator):
    """Training with the statistics of all replicas: BatchStatistics of the global batch.

    The moving variance is the estimator plain batch norm on the concatenated
    batch would store ('slim': unbiased where the fused kernel would run).
    """
    y, mean, variance, count = sync_batch_norm.train(
        inputs, group=group, seed=seed, axis=axis, dtype=dtype, beta=beta, gamma=gamma,
        epsilon=epsilon, fused=fused, data_format=data_format)
    if estimator == "slim":
        estimator = "unbiased" if fused else "biased"
    moving = paths.convert_variance(variance, count, False, estimator)
    return BatchStatistics(y, mean, moving, variance)


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
