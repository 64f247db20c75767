"""tf-slim's own normalization tests, run against slimnorm.

The four test classes come from the tf-slim wheel installed in this
environment (`tf_slim/layers/layers_test.py`: BatchNormTest, LayerNormTest;
`tf_slim/layers/normalization_test.py`: GroupNormTest, InstanceNormTest).
Their code is not copied here: the modules are imported from the installed
package and only the names through which they reach the layers are rewired
(`_layers` and `normalization`, module globals bound by their imports), so
that `_layers.batch_norm` is `slimnorm.batch_norm` and so on while every
other slim layer stays slim's.

pytest collects the classes because they are unittest.TestCase subclasses
bound in this module. A test may be skipped only through
`tf_slim_norm_skips.SKIPS`, each entry with the reason slimnorm differs on
purpose.
"""
import importlib
import types
import unittest

import tensorflow as tf

import slimnorm
from tests.tf_slim_norm_skips import SKIPS

NORMS = {
    "batch_norm": slimnorm.batch_norm,
    "layer_norm": slimnorm.layer_norm,
    "group_norm": slimnorm.group_norm,
    "instance_norm": slimnorm.instance_norm,
}


def _rewired(module):
    """A module object that is `module` except for the four normalizers."""
    proxy = types.ModuleType(module.__name__ + "_with_slimnorm")
    proxy.__dict__.update(vars(module))
    for name, fn in NORMS.items():
        if hasattr(module, name):
            setattr(proxy, name, fn)
    return proxy


def _load(test_module_name, rewire):
    """Imports tf-slim's test module and rebinds the globals named in `rewire`."""
    test_module = importlib.import_module(test_module_name)
    for global_name in rewire:
        setattr(test_module, global_name, _rewired(getattr(test_module, global_name)))
    return test_module


def _graph_mode_run(self, result=None):
    """Runs the test in a fresh graph, as tf-slim's tests ran under TF 1.

    TF 2 executes eagerly by default, where their tf.placeholder calls fail;
    a default graph for the duration of each test is what TF 1 gave them,
    without disabling eager execution for the rest of the test session.
    """
    with tf.Graph().as_default():
        return super(type(self), self).run(result)


def _with_skips(cls):
    """tf-slim's test class, run in graph mode, with the documented skips."""
    skipped = {name: unittest.skip(reason)(getattr(cls, name))
               for (cls_name, name), reason in SKIPS.items() if cls_name == cls.__name__}
    return type(cls.__name__, (cls,), dict(skipped, run=_graph_mode_run, __module__=__name__))


_layers_test = _load("tf_slim.layers.layers_test", ["_layers"])
_normalization_test = _load("tf_slim.layers.normalization_test", ["normalization"])

BatchNormTest = _with_skips(_layers_test.BatchNormTest)
LayerNormTest = _with_skips(_layers_test.LayerNormTest)
GroupNormTest = _with_skips(_normalization_test.GroupNormTest)
InstanceNormTest = _with_skips(_normalization_test.InstanceNormTest)


def test_the_rewiring_reaches_slimnorm():
    """The classes above really call slimnorm's layers, not slim's."""
    assert _layers_test._layers.batch_norm is slimnorm.batch_norm
    assert _layers_test._layers.layer_norm is slimnorm.layer_norm
    assert _normalization_test.normalization.group_norm is slimnorm.group_norm
    assert _normalization_test.normalization.instance_norm is slimnorm.instance_norm
    # every other layer is still tf-slim's own
    slim_layers = importlib.import_module("tf_slim.layers.layers")
    assert _layers_test._layers.conv2d is slim_layers.conv2d
    assert slim_layers.batch_norm is not slimnorm.batch_norm


def test_the_suite_has_all_of_slims_tests():
    """122 tests, as in tf-slim 1.1.0; the skip list names only tests that exist."""
    # tf.test.TestCase's own deprecated `test_session` is no test of slim's.
    counts = {cls.__name__: len(set(unittest.TestLoader().getTestCaseNames(cls))
                                - {"test_session"})
              for cls in (BatchNormTest, LayerNormTest, GroupNormTest, InstanceNormTest)}
    assert counts == {"BatchNormTest": 66, "LayerNormTest": 15,
                      "GroupNormTest": 23, "InstanceNormTest": 18}
    classes = {"BatchNormTest": BatchNormTest, "LayerNormTest": LayerNormTest,
               "GroupNormTest": GroupNormTest, "InstanceNormTest": InstanceNormTest}
    for cls_name, test_name in SKIPS:
        assert hasattr(classes[cls_name], test_name), (cls_name, test_name)
