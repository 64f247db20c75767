"""What TensorFlow 2.21 moved out from under tf-slim 1.1.0, and the stand-ins that give it back.

tf-slim 1.1.0 reaches into TensorFlow's private modules (`tensorflow.python.*`)
for names that later TensorFlow releases moved to modules of their own:
`ops.Tensor` went to `tensor`, `control_flow_ops.cond` to `cond`,
`array_ops.stack` to `array_ops_stack`, and so on. The names still exist;
only the module tf-slim asks changed. So tf-slim's data decoder, train ops,
metrics and layers fail with `AttributeError` the first time they run.

The repair never edits TensorFlow's modules (other code may rely on their
current contents). Instead, each tf-slim module that imported one of the
affected TensorFlow modules gets, in place of that module, a `RepairedModule`:
a namespace that forwards every attribute to the real module and adds only
the names this table lists, taken from where TensorFlow keeps them now.
`MOVED` is the complete table for tf-slim 1.1.0 on TensorFlow 2.21 (its
library modules and its bundled tests, which are modules of the tf_slim
package too); a name TensorFlow still has in its old place is never shadowed.
"""
import importlib
import types

# old module -> {name tf-slim uses: "new.module:attribute"}.
MOVED = {
    "tensorflow.python.framework.ops": {
        "Tensor": "tensorflow.python.framework.tensor:Tensor",
        "IndexedSlices": "tensorflow.python.framework.indexed_slices:IndexedSlices",
        "IndexedSlicesValue": "tensorflow.python.framework.indexed_slices:IndexedSlicesValue",
        "convert_n_to_tensor_or_indexed_slices":
            "tensorflow.python.framework.indexed_slices:convert_n_to_tensor_or_indexed_slices",
    },
    "tensorflow.python.ops.control_flow_ops": {
        "case": "tensorflow.python.ops.control_flow_case:case",
        "cond": "tensorflow.python.ops.cond:cond",
        "while_loop": "tensorflow.python.ops.while_loop:while_loop",
        "Assert": "tensorflow.python.ops.control_flow_assert:Assert",
    },
    "tensorflow.python.ops.array_ops": {
        "stack": "tensorflow.python.ops.array_ops_stack:stack",
        "unstack": "tensorflow.python.ops.array_ops_stack:unstack",
    },
    "tensorflow.python.ops.variable_scope": {
        # tf-slim's local_variable/global_variable call `variable_scope.variable(
        # initial_value, trainable=, collections=, validate_shape=, use_resource=,
        # name=)`: the signature of the v1 Variable constructor, which also goes
        # through the graph's variable-creator stack as the old function did.
        "variable": "tensorflow.python.ops.variable_v1:VariableV1",
        "enable_resource_variables":
            "tensorflow.python.ops.resource_variables_toggle:enable_resource_variables",
        "disable_resource_variables":
            "tensorflow.python.ops.resource_variables_toggle:disable_resource_variables",
        "resource_variables_enabled":
            "tensorflow.python.ops.resource_variables_toggle:resource_variables_enabled",
    },
    "tensorflow.python.ops.variables": {
        "VariableV1": "tensorflow.python.ops.variable_v1:VariableV1",
    },
}


class RepairedModule(types.ModuleType):
    """One TensorFlow module as tf-slim expects to see it.

    Attributes listed in `added` are the moved names; every other attribute
    is read from `original` at the time of use, so later changes to the real
    module stay visible.
    """

    def __init__(self, original, added):
        super().__init__(original.__name__, original.__doc__)
        self.__dict__["repaired_original"] = original
        self.__dict__["repaired_names"] = tuple(sorted(added))
        self.__dict__.update(added)

    def __getattr__(self, name):
        return getattr(self.__dict__["repaired_original"], name)

    def __repr__(self):
        return "<module %r repaired for tf-slim by slimnorm (adds %s)>" % (
            self.__name__, ", ".join(self.repaired_names))


def _resolve(target):
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def missing_names(module):
    """The names of `MOVED` that `module` lacks, with their new homes resolved."""
    wanted = MOVED.get(getattr(module, "__name__", None), {})
    return {name: _resolve(target) for name, target in wanted.items()
            if not hasattr(module, name)}


_CACHE = {}


def repaired(module):
    """The stand-in for `module`, or None when it needs none.

    One stand-in per TensorFlow module, shared by every tf-slim module that
    imported it (so `unpatch` and identity checks see a single object).
    """
    if isinstance(module, RepairedModule) or not isinstance(module, types.ModuleType):
        return None
    if module.__name__ not in MOVED:
        return None
    cached = _CACHE.get(module.__name__)
    if cached is not None and cached.repaired_original is module:
        return cached
    added = missing_names(module)
    if not added:
        return None
    _CACHE[module.__name__] = RepairedModule(module, added)
    return _CACHE[module.__name__]
