"""slimnorm: normalization layers for tf.compat.v1 / tf-slim graph code.

On TensorFlow 2.21 `tf_slim.batch_norm` no longer runs (it reaches for
modules TensorFlow removed). slimnorm re-implements it on `tf.nn`
primitives with the same signature, variable names and semantics, so
`slim.batch_norm` -> `slimnorm.batch_norm` is the only change a user makes.

`import slimnorm` does not import TensorFlow: the layers (`batch_norm`,
`batch_norm_layer`, `group_norm`, `layer_norm`, `instance_norm`) and
`slimnorm.training` load on first use (PEP 562). The command line can then
check its flags with `slimnorm.checks` and `slimnorm.choices` before
TensorFlow's start-up.

`slimnorm.precision` switches TensorFlow's bfloat16 (CPU) or float16 (GPU)
mixed-precision rewrite on for a Session and wraps optimizers for loss
scaling.

`slimnorm.kernels_available()` says whether group/layer/instance norm run on
the fused C++ CPU kernels (compiled on first use) or on TensorFlow ops.

Packages: `slimnorm.train` (training loop, evaluation, run configuration),
`slimnorm.data` (data sets), `slimnorm.bench` (benchmarks and experiments),
`slimnorm.cli` (the `slimnorm` command), `slimnorm.legacy` (running unedited
tf-slim code: `patch_tf_slim`).
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types

# Public name -> the submodule that defines it under the same name.
_LAYERS = {
    'batch_norm': 'slimnorm.batch_norm',
    'batch_norm_layer': 'slimnorm.batch_norm',
    'group_norm': 'slimnorm.group_norm',
    'instance_norm': 'slimnorm.instance_norm',
    'layer_norm': 'slimnorm.layer_norm',
    # Synchronized batch norm: the replicas a layer reduces over (slimnorm.replicas).
    'replica_group': 'slimnorm.replicas',
    # Adopting slimnorm in unedited tf-slim code (see slimnorm.legacy.patch).
    'patch_tf_slim': 'slimnorm.legacy.patch',
    'unpatch_tf_slim': 'slimnorm.legacy.patch',
    'patched_tf_slim': 'slimnorm.legacy.patch',
    # Whether group/layer/instance norm run on the fused C++ kernels, and why.
    'kernels_available': 'slimnorm.kernels',
}
_MODULES = ('training', 'replicas')  # create_train_op, ...; replica_group, session_config
# Modules that moved, under the old names user code imports: the same module objects.
_MOVED = {
    'slimnorm.training': 'slimnorm.train.train_op',
    'slimnorm.tf_slim_patch': 'slimnorm.legacy.patch',
}
# Submodules that import TensorFlow only when used (the command lines check
# flags with them first): mixed-precision session configs and loss scaling.
_LIGHT_MODULES = ('precision',)

__all__ = ['batch_norm', 'batch_norm_layer', 'group_norm', 'instance_norm', 'kernels_available',
           'layer_norm', 'patch_tf_slim', 'patched_tf_slim', 'replica_group', 'unpatch_tf_slim']
__version__ = '0.1.0'


def _import_with_tensorflow(module):
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised without TF only
        raise ImportError(
            'slimnorm needs TensorFlow 2.21, which is installed through an extra: '
            "`pip install 'slimnorm[cpu]'` (tensorflow-cpu) or "
            "`pip install 'slimnorm[gpu]'` (tensorflow[and-cuda]). "
            f'Original error: {exc}') from exc
    return importlib.import_module(module)


def __getattr__(name):
    if name in _LAYERS:
        value = getattr(_import_with_tensorflow(_LAYERS[name]), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return _import_with_tensorflow(f'{__name__}.{name}')
    if name in _LIGHT_MODULES:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(set(globals()) | set(_LAYERS) | set(_MODULES) | set(_LIGHT_MODULES))


class _Package(types.ModuleType):
    """Keeps `slimnorm.batch_norm` the function once its module is imported.

    Importing the submodule `slimnorm.batch_norm` binds the module object to
    the package attribute of the same name; the public name is the
    (slim.add_arg_scope-decorated) function it defines, so the binding is
    redirected to that function.
    """

    def __setattr__(self, name, value):
        if name in _LAYERS and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import slimnorm.training` gives `slimnorm.train.train_op` itself (and so on for _MOVED).

    First on sys.meta_path, and only for those names. The module is
    imported when the old name is, so `import slimnorm` stays TensorFlow-free.
    """

    def find_spec(self, name, path=None, target=None):
        if name in _MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(_MOVED[spec.name])  # keeps its own __name__, __spec__

    def exec_module(self, module):
        pass


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModuleFinder())
