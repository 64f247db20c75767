"""One switch that picks the normalizer of every layer of a network.

slim networks receive their normalizer through `normalizer_fn` and
`normalizer_params` of `slim.conv2d` / `slim.fully_connected`. This module
turns a name ('batch', 'group', ...) plus the network's data_format into that
pair, so that changing one argument turns a whole network from batch norm to
group norm (the use case of Wu & He 2018), and so that the normalizer always
reads the channel axis the network writes (slim's Inception arg scope did not
pass data_format on, and its NCHW graphs normalized over the width axis).

| normalizer       | normalizer_fn                          | data_format handling |
|------------------|----------------------------------------|----------------------|
| 'batch'          | `slimnorm.batch_norm`                  | passed as data_format |
| 'batch_renorm'   | `slimnorm.batch_norm` with renorm=True | passed as data_format |
| 'group'          | `group_norm` below (rank 2 or 4)       | channels/reduction axes |
| 'layer'          | `slimnorm.layer_norm`                  | NHWC only (see below) |
| 'instance'       | `slimnorm.instance_norm`               | passed as data_format |
| None (or 'none') | no normalizer                          | -                    |

Batch norm's `is_training` is not set here: the networks set it with
`slim.arg_scope([slimnorm.batch_norm], is_training=...)`, as slim did.
Synchronized batch norm is `normalizer_params={'sync_replicas': True}` with
'batch', built inside `slimnorm.replica_group` (see `slimnorm.replicas`).
"""

import tensorflow as tf

import slimnorm
from slimnorm import batch_renorm, checks
from slimnorm.choices import NORMALIZER_ALIASES, NORMALIZERS

# Batch renorm's clipping follows the paper's warm-up (Ioffe 2017): plain
# batch norm for 5k steps, then r and d relaxed to rmax 3 (at 40k steps) and
# dmax 5 (at 25k), from the global step. Unclipped, r = sigma_B / sigma starts
# out large while the renorm averages still hold their initial 0/1, and a net
# of a few layers diverged at lr 0.1 on digits (step 67). Scale the steps to
# a run with normalizer_params={'renorm_schedule': {...}}.
RENORM_SCHEDULE = {'warmup_steps': 5000, 'dmax_steps': 25000, 'rmax_steps': 40000,
                   'rmax': 3.0, 'dmax': 5.0}


def canonical_normalizer(normalizer):
    """Returns the normalizer name with aliases resolved, or raises ValueError."""
    if isinstance(normalizer, str) and normalizer.lower() in NORMALIZER_ALIASES:
        return NORMALIZER_ALIASES[normalizer.lower()]
    return checks.one_of(normalizer, NORMALIZERS + tuple(NORMALIZER_ALIASES),
                         'normalizer')


def group_norm(inputs, groups=32, data_format='NHWC', **kwargs):
    """`slimnorm.group_norm` on the channel axis of `data_format`.

    Chooses `channels_axis` / `reduction_axes` from the rank of `inputs`:
    a rank-4 tensor is normalized over its spatial axes and each group of
    channels, a rank-2 (fully-connected) tensor over each group of units.
    `groups` is capped at the number of channels, so that the GN default of
    32 groups also works for layers with fewer channels (one group per
    channel is then instance norm, the limit the GN paper describes). With
    `group_size` in kwargs, `groups` is ignored.
    """
    if checks.rank(inputs, (2, 4), why='group_norm of nets.normalizers takes '
                   'conv or fully-connected outputs; ') == 4:
        channels_axis = -1 if data_format == 'NHWC' else -3
        reduction_axes = (-3, -2) if data_format == 'NHWC' else (-2, -1)
    else:
        channels_axis, reduction_axes = -1, ()
    if kwargs.get('group_size') is None:
        channels = inputs.shape[channels_axis]
        if channels is not None:
            groups = min(groups, channels)
        kwargs['groups'] = groups
    return slimnorm.group_norm(inputs, channels_axis=channels_axis,
                               reduction_axes=reduction_axes, **kwargs)


def normalizer_fn_and_params(normalizer, data_format='NHWC',
                             batch_norm_params=None, normalizer_params=None):
    """Returns `(normalizer_fn, normalizer_params)` for slim layers.

    Args:
      normalizer: one of NORMALIZERS.
      data_format: 'NHWC' or 'NCHW', the layout of the network's activations.
      batch_norm_params: defaults used only for 'batch' and 'batch_renorm'
        (e.g. decay and epsilon of an arg scope).
      normalizer_params: keyword arguments of the normalizer; they override
        both the defaults above and the data_format derived arguments.

    Raises:
      ValueError: unknown normalizer or data_format, or 'layer' with NCHW.
    """
    normalizer = canonical_normalizer(normalizer)
    checks.data_format(data_format)
    user_params = dict(normalizer_params or {})
    if normalizer is None:
        return None, {}
    if user_params.get('sync_replicas') and normalizer not in ('batch', 'batch_renorm'):
        # Synchronized statistics are batch norm's; the other norms have no batch axis.
        raise ValueError(
            "normalizer_params sync_replicas=True is an argument of batch norm, got "
            "normalizer=%r; accepted: normalizer='batch' with sync_replicas" % (normalizer,))
    if normalizer in ('batch', 'batch_renorm'):
        params = dict(batch_norm_params or {})
        params['data_format'] = data_format
        if normalizer == 'batch_renorm':
            schedule = dict(RENORM_SCHEDULE, **user_params.pop('renorm_schedule', {}))
            params['renorm'] = True
            params['renorm_clipping'] = batch_renorm.clipping_schedule(
                tf.compat.v1.train.get_or_create_global_step(), **schedule)
        params.update(user_params)
        return slimnorm.batch_norm, params
    if normalizer == 'group':
        return group_norm, dict({'data_format': data_format}, **user_params)
    if normalizer == 'instance':
        return (slimnorm.instance_norm,
                dict({'data_format': data_format}, **user_params))
    # 'layer': tf-slim's layer_norm puts beta/gamma on the trailing axes, which
    # are the width (not the channels) in NCHW; refuse rather than build a
    # different model than the NHWC one.
    if data_format != 'NHWC':
        raise ValueError(
            "normalizer='layer' needs data_format='NHWC' (got %r): layer_norm "
            "keeps its beta/gamma on the last axis; use NHWC, or "
            "normalizer='group' with normalizer_params={'groups': 1}"
            % (data_format,))
    return slimnorm.layer_norm, user_params
