"""A `tensorflow.contrib` stand-in: what TF 1 scripts import from contrib.

TensorFlow 2 has no `tensorflow.contrib`. research/slim's scripts and
networks import three of its modules, each of which has a home today:

- `slim`: tf-slim (`import tf_slim`), the same library contrib bundled.
- `quantize`: `create_training_graph` / `create_eval_graph` (and the
  `experimental_` spellings), delegated to `slimnorm.quantize` when called;
  a slimnorm without that module says so in one line.
- `training`: `HParams` (`slimnorm.legacy.hparams`), which nasnet and
  pnasnet build their configurations with.

`install()` registers `tensorflow.contrib` and these submodules in
`sys.modules`, so `from tensorflow.contrib import quantize as
contrib_quantize` and `import tensorflow.contrib.slim as slim` resolve; it
does not change TensorFlow's own modules (`tf.contrib` is available through
the `--tf1_api` view, `slimnorm.legacy.tf1_api`).
"""
import importlib
import sys
import types

NAME = 'tensorflow.contrib'
QUANTIZE_FUNCTIONS = ('create_training_graph', 'create_eval_graph',
                      'experimental_create_training_graph', 'experimental_create_eval_graph')


class QuantizeUnavailable(ImportError):
    """slimnorm.quantize is not part of this installation (one line)."""


def _quantize_function(name):
    try:
        module = importlib.import_module('slimnorm.quantize')
    except ModuleNotFoundError as err:
        if err.name not in ('slimnorm.quantize', 'slimnorm'):
            raise
        raise QuantizeUnavailable(
            f'tensorflow.contrib.quantize.{name} needs slimnorm.quantize, which this '
            'slimnorm does not have; upgrade slimnorm or do not pass --quantize_delay / '
            '--quantize') from None
    function = getattr(module, name, None) or getattr(
        module, name.replace('experimental_', ''), None)
    if function is None:
        raise QuantizeUnavailable(f'slimnorm.quantize has no {name}')
    return function


def _delegate(name):
    def call(*args, **kwargs):
        return _quantize_function(name)(*args, **kwargs)
    call.__name__ = name
    call.__doc__ = f'contrib.quantize.{name}: slimnorm.quantize.{name} (imported when called).'
    return call


def _module(name, doc, **attributes):
    module = types.ModuleType(name, doc)
    module.__dict__.update(attributes)
    return module


def build():
    """The stand-in modules: {module name: module}."""
    import tf_slim

    from slimnorm.legacy.hparams import HParams
    quantize = _module(NAME + '.quantize', 'contrib.quantize, backed by slimnorm.quantize.',
                       **{name: _delegate(name) for name in QUANTIZE_FUNCTIONS})
    training = _module(NAME + '.training', 'contrib.training: HParams.', HParams=HParams)
    contrib = _module(NAME, __doc__, slim=tf_slim, quantize=quantize, training=training,
                      __path__=[])
    return {NAME: contrib, NAME + '.slim': tf_slim, NAME + '.quantize': quantize,
            NAME + '.training': training}


def install():
    """Registers the stand-in in sys.modules (idempotent); returns `tensorflow.contrib`."""
    if isinstance(sys.modules.get(NAME), types.ModuleType) and \
            getattr(sys.modules[NAME], 'training', None) is not None:
        return sys.modules[NAME]
    modules = build()
    sys.modules.update(modules)
    return modules[NAME]
