"""`python -m slimnorm.legacy --mixed_precision bfloat16 train.py ...`: mixed precision, script unedited.

tf-slim scripts open their Sessions through tf-slim: `slim.learning.train`,
`slim.evaluation.evaluate_once` and `slim.evaluation.evaluation_loop`, each
with a `session_config` argument (research/slim's train_image_classifier
passes its own ConfigProto there). `apply` wraps those three on tf-slim's
modules so that the ConfigProto they get (the script's, or a new one) has
`slimnorm.precision`'s rewrite switched on; for float16 it also wraps
`slim.learning.create_train_op` so the optimizer gets dynamic loss scaling.
Only tf-slim's module attributes are replaced, as `patch_tf_slim` does;
TensorFlow is untouched. A script that opens `tf.compat.v1.Session` itself
is not reached: it passes `slimnorm.precision.session_config(...)` as its
`config`.
"""
import functools
import inspect

from slimnorm import precision

# tf-slim module -> its functions that take session_config.
SESSION_FUNCTIONS = {'tf_slim.learning': ('train',),
                     'tf_slim.evaluation': ('evaluate_once', 'evaluation_loop')}


def _rebinding(function, argument, transform, mixed_precision):
    """``function`` with its argument ``argument`` replaced by ``transform(value)``."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments[argument] = transform(bound.arguments.get(argument))
        return function(*bound.args, **bound.kwargs)
    wrapper.slimnorm_mixed_precision = mixed_precision
    return wrapper


def _with_session_config(function, mixed_precision):
    return _rebinding(function, 'session_config',
                      lambda config: precision.session_config(mixed_precision, config),
                      mixed_precision)


def _with_loss_scaling(function, mixed_precision):
    return _rebinding(function, 'optimizer',
                      lambda opt: precision.loss_scale_optimizer(opt, mixed_precision),
                      mixed_precision)


def apply(mixed_precision):
    """Wraps tf-slim's Session-opening functions for ``mixed_precision``; returns their names.

    'none' changes nothing. Call after ``patch_tf_slim`` (which replaces
    ``create_train_op``), before the script runs.
    """
    import importlib
    precision.check(mixed_precision)
    if mixed_precision == precision.NONE:
        return []
    wrapped = []
    for module_name, names in SESSION_FUNCTIONS.items():
        module = importlib.import_module(module_name)
        for name in names:
            current = getattr(module, name)
            if getattr(current, 'slimnorm_mixed_precision', None) != mixed_precision:
                setattr(module, name, _with_session_config(current, mixed_precision))
            wrapped.append(f'{module_name}.{name}')
    if mixed_precision == precision.FLOAT16:
        learning = importlib.import_module('tf_slim.learning')
        if getattr(learning.create_train_op, 'slimnorm_mixed_precision', None) is None:
            learning.create_train_op = _with_loss_scaling(learning.create_train_op,
                                                          mixed_precision)
        wrapped.append('tf_slim.learning.create_train_op')
    return wrapped
