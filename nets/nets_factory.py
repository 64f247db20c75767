"""A network by name, wrapped in its arg scope, as research/slim's factory.

    network_fn = get_network_fn('small_convnet', num_classes=10,
                                is_training=True, normalizer='group')
    logits, end_points = network_fn(images)
    network_fn.default_image_size  # 28

The keyword arguments of `get_network_fn` go to whichever of the network's
two functions accepts them: the arg scope function (e.g. Inception's
`normalizer`, `normalizer_params`, `batch_norm_decay`) or the network
function (e.g. the small convnet's `normalizer`, `fc_units`, Inception's
`depth_multiplier`). `data_format` goes to both when both accept it, so the
network and its normalizer cannot disagree on the channel axis.
"""

import functools
import importlib
import inspect

import tf_slim as slim

from slimnorm import checks
from slimnorm.choices import MODELS


def _network_and_arg_scope(name):
    """research/slim's naming: `nets.<name>.<name>` and `<name>_arg_scope`."""
    module = importlib.import_module('nets.' + name)
    return getattr(module, name), getattr(module, name + '_arg_scope')


# name -> (network function, arg scope function), for every name of MODELS.
NETWORKS = {name: _network_and_arg_scope(name) for name in MODELS}


def _parameters(function):
    return set(inspect.signature(function).parameters)


def _split_kwargs(name, kwargs, network, arg_scope):
    """Splits kwargs into (arg scope kwargs, network kwargs)."""
    scope_params, network_params = _parameters(arg_scope), _parameters(network)
    checks.dict_keys(kwargs, sorted((scope_params | network_params) - {'inputs', 'images'}),
                     'the keyword arguments of get_network_fn(%r)' % name)
    scope_kwargs = {k: v for k, v in kwargs.items() if k in scope_params}
    network_kwargs = {k: v for k, v in kwargs.items()
                      if k in network_params
                      and (k not in scope_params or k == 'data_format')}
    return scope_kwargs, network_kwargs


def get_network_fn(name, num_classes, weight_decay=0.0, is_training=False,
                   normalizer='batch', **kwargs):
    """Returns `network_fn(images, **kw) -> (logits, end_points)`.

    Args:
      name: one of NETWORKS.
      num_classes: number of logits (0 or None: pre-logits features).
      weight_decay: L2 weight decay of the conv and fully-connected weights.
      is_training: whether the network is built for training (batch norm
        statistics, dropout).
      normalizer: 'batch', 'batch_renorm', 'group', 'layer', 'instance' or
        None.
      **kwargs: further arguments of the network or of its arg scope.

    The returned function has the attribute `default_image_size`; its own
    keyword arguments go to the network function and override the above.

    Raises:
      ValueError: unknown name or unknown keyword argument.
    """
    checks.one_of(name, MODELS, 'name')
    network, arg_scope = NETWORKS[name]
    kwargs = dict(kwargs, normalizer=normalizer)
    scope_kwargs, network_kwargs = _split_kwargs(name, kwargs, network,
                                                 arg_scope)

    @functools.wraps(network)
    def network_fn(images, **overrides):
        with slim.arg_scope(arg_scope(weight_decay=weight_decay,
                                      **scope_kwargs)):
            call_kwargs = dict(network_kwargs, num_classes=num_classes,
                               is_training=is_training)
            call_kwargs.update(overrides)
            return network(images, **call_kwargs)

    network_fn.default_image_size = network.default_image_size
    return network_fn
