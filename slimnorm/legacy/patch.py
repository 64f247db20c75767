"""Make unedited tf-slim 1.1.0 code run on TensorFlow 2.21: `patch_tf_slim()`.

Three things change, all only inside tf-slim's own modules (TensorFlow's
modules are never edited):

1. **The norms.** `batch_norm`, `layer_norm`, `group_norm` and
   `instance_norm` are replaced by slimnorm's on every loaded `tf_slim`
   module that exposes them: `tf_slim` itself, the `tf_slim.layers`
   package (reachable only through `sys.modules`: after `import tf_slim`,
   the attribute `tf_slim.layers` is the module `tf_slim.layers.layers`,
   because `tf_slim/__init__.py` star-imports it), `tf_slim.layers.layers`
   and `tf_slim.layers.normalization`, and any other module holding the
   originals. Code that looks the norm up at call time (`slim.batch_norm`,
   `layers_lib.batch_norm` in `tf_slim.nets`, research/slim's networks) then
   builds slimnorm's layers, with tf-slim's variable names. slimnorm's norms
   carry their own arg-scope key, so `slim.arg_scope([slim.batch_norm], ...)`
   written after the patch reaches them.
2. **Moved TensorFlow names** (`ops.Tensor`, `control_flow_ops.cond`,
   `array_ops.stack`, ...): see `slimnorm.legacy.repairs`.
3. **tf-slim functions broken in their own code** (`assign_from_checkpoint`
   on partitioned variables, under NumPy >= 1.23): see `slimnorm.legacy.fixed`.

What it cannot reach: a reference to an original norm taken *before* the
patch outside tf-slim (`from tf_slim import batch_norm`, or a module-level
definition such as research/slim mobilenet's `defaults={(slim.batch_norm,):
{...}}`). Those keep tf-slim's
norm; the patch warns with `CapturedOriginalWarning`, naming each one it can
see (module globals, and dicts, lists, tuples and `functools.partial` objects
held in module globals). Patch before importing network code.

`patch_tf_slim()` is idempotent and returns the changes it made (a second
call returns none); `unpatch_tf_slim()` undoes them; `patched_tf_slim()` is
the context-manager form.
"""
import collections
import contextlib
import functools
import importlib
import importlib.metadata
import sys
import warnings

from slimnorm.legacy import fixed, repairs

KNOWN_TF_SLIM_VERSIONS = ("1.1.0",)

# name -> (tf-slim module defining the original, slimnorm module defining ours)
NORMS = {
    "batch_norm": ("tf_slim.layers.layers", "slimnorm.batch_norm"),
    "layer_norm": ("tf_slim.layers.layers", "slimnorm.layer_norm"),
    "group_norm": ("tf_slim.layers.normalization", "slimnorm.group_norm"),
    "instance_norm": ("tf_slim.layers.normalization", "slimnorm.instance_norm"),
}

Change = collections.namedtuple("Change", ["module", "name", "old", "new"])
Change.__doc__ = "One attribute the patch set: `sys.modules[module].<name>` was `old`, is `new`."


class UnsupportedTfSlimVersion(RuntimeError):
    """The installed tf-slim is not one whose module layout the patch knows."""


class CapturedOriginalWarning(UserWarning):
    """Code outside tf-slim holds tf-slim's original norm, which the patch cannot replace."""


_APPLIED = []  # the Change records currently in effect, in the order they were made


def tf_slim_version():
    """The installed tf-slim distribution's version string (None if unknown)."""
    try:
        return importlib.metadata.version("tf-slim")
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_version():
    version = tf_slim_version()
    if version not in KNOWN_TF_SLIM_VERSIONS:
        raise UnsupportedTfSlimVersion(
            "patch_tf_slim: installed tf-slim version is %r; the patch knows the module layout "
            "of tf-slim %s only. Install tf-slim==%s, or use slimnorm's norms directly "
            "(`normalizer_fn=slimnorm.batch_norm`) without patching."
            % (version, ", ".join(KNOWN_TF_SLIM_VERSIONS), KNOWN_TF_SLIM_VERSIONS[-1]))


def _tf_slim_modules():
    """Every loaded module of the tf_slim package, by name (sorted, for stable reports)."""
    return [(name, module) for name, module in sorted(sys.modules.items())
            if module is not None and (name == "tf_slim" or name.startswith("tf_slim."))]


def _replacements():
    """{id(tf-slim's original): (original, replacement)}: the norms, then `fixed.FIXED`.

    ids are safe keys: the originals stay alive in the values.
    """
    ours = slimnorm_norms()
    wanted = [(defining, name, ours[name]) for name, (defining, _) in NORMS.items()]
    wanted += [(defining, name, new) for (defining, name), new in fixed.FIXED.items()]
    result = {}
    for defining, name, new in wanted:
        original = _find_original(importlib.import_module(defining), name)
        if original is None:
            raise UnsupportedTfSlimVersion(
                "patch_tf_slim: %s has no %s; this tf-slim's layout is not the one the patch "
                "knows (tf-slim %s)." % (defining, name, ", ".join(KNOWN_TF_SLIM_VERSIONS)))
        result[id(original)] = (original, new)
    return result


def _find_original(module, name):
    for change in _APPLIED:  # already patched: the original is in our record
        if change.module == module.__name__ and change.name == name:
            return change.old
    return getattr(module, name, None)


def slimnorm_norms():
    """{name: slimnorm's function} for every name in `NORMS`."""
    return {name: getattr(importlib.import_module(ours), name)
            for name, (_, ours) in NORMS.items()}


def _set(module_name, name, new):
    module = sys.modules[module_name]
    change = Change(module_name, name, getattr(module, name), new)
    setattr(module, name, new)
    _APPLIED.append(change)
    return change


def patch_tf_slim(warn_captured=True):
    """Replace tf-slim's norms with slimnorm's and repair its TF 2.21 breakages.

    Imports `tf_slim` (and every module it imports) first, so the repair
    covers the whole package; modules of `tf_slim.nets` look the norms up at
    call time and need nothing. Returns a tuple of `Change(module, name, old,
    new)`, one per attribute set by this call: empty when everything was
    already patched. Raises `UnsupportedTfSlimVersion` for a tf-slim other
    than 1.1.0. With `warn_captured`, issues one `CapturedOriginalWarning`
    listing the places outside tf-slim that still hold an original norm.
    """
    _check_version()
    importlib.import_module("tf_slim")
    replacements = _replacements()
    made = []
    for module_name, module in _tf_slim_modules():
        for name, value in list(vars(module).items()):
            if id(value) in replacements:
                made.append(_set(module_name, name, replacements[id(value)][1]))
                continue
            stand_in = repairs.repaired(value)
            if stand_in is not None:
                made.append(_set(module_name, name, stand_in))
    if warn_captured:
        captured = find_captured_originals(original for original, _ in replacements.values())
        if captured:
            warnings.warn(
                "patch_tf_slim: these references to tf-slim functions the patch replaces were "
                "taken before the patch and still call tf-slim's (which fail on TF 2.21): %s. "
                "Apply the patch before importing that code (e.g. run it through `python -m "
                "slimnorm.legacy`), or pass slimnorm's norm there." % ", ".join(captured),
                CapturedOriginalWarning, stacklevel=2)
    return tuple(made)


def unpatch_tf_slim():
    """Undo every change `patch_tf_slim` made, newest first; returns the changes undone.

    An attribute someone else has reassigned since the patch is left as it
    is (and not reported), so unpatching never overwrites newer code.
    """
    return _undo(list(_APPLIED))


def _undo(changes):
    """Reverts `changes` newest first; returns those that were still in effect."""
    undone = []
    for change in reversed(changes):
        _APPLIED.remove(change)
        module = sys.modules.get(change.module)
        if module is not None and getattr(module, change.name, None) is change.new:
            setattr(module, change.name, change.old)
            undone.append(change)
    return tuple(undone)


def is_patched():
    """True while changes made by `patch_tf_slim` are in effect."""
    return bool(_APPLIED)


@contextlib.contextmanager
def patched_tf_slim(warn_captured=True):
    """`with patched_tf_slim(): ...`: patched inside the block.

    Only the changes this block made are undone on exit, so an outer patch
    (or an enclosing `with`) stays in effect.
    """
    made = patch_tf_slim(warn_captured=warn_captured)
    try:
        yield made
    finally:
        _undo([change for change in made if change in _APPLIED])


def find_captured_originals(originals):
    """'module.path' names outside tf-slim that still reference an original norm.

    Looks at module globals and, up to three levels down, into the dicts
    (keys and values), lists, tuples and `functools.partial` objects they
    hold: research/slim's mobilenet keeps `(slim.batch_norm,)` as a key of a
    dict inside a module-level dict. Modules of tf_slim (which the patch
    handles) and slimnorm (whose record holds the originals on purpose) are
    skipped.
    """
    wanted = {id(function) for function in originals}
    found, seen = [], set()
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] in ("tf_slim", "slimnorm"):
            continue
        if id(module) in seen:  # the same module under two names (__main__, __mp_main__)
            continue
        seen.add(id(module))
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for name, value in items:
            for where, held in _held(name, value, depth=3):
                if id(held) in wanted:
                    found.append("%s.%s" % (module_name, where))
    return sorted(set(found))


def _held(path, value, depth):
    """(path, object) for `value` and, `depth` levels down, what it holds."""
    yield path, value
    if depth == 0 or isinstance(value, Change):  # our own record holds the originals
        return
    if isinstance(value, functools.partial):
        children = [(path + ".func", value.func)]
    elif isinstance(value, dict):
        children = []
        for key, item in list(value.items()):
            children.append(("%s[%s]" % (path, _short(key)), item))
            # A key holds functions directly, or in a tuple (arg-scope style).
            for element in key if isinstance(key, tuple) else (key,):
                children.append(("%s key %s" % (path, _short(key)), element))
    elif isinstance(value, (list, tuple)):
        children = [("%s[%d]" % (path, index), item) for index, item in enumerate(value)]
    else:
        return
    for child_path, child in children:
        yield from _held(child_path, child, depth - 1)


def _short(key):
    if isinstance(key, tuple):
        return "(%s)" % ", ".join(_short(element) for element in key)
    text = getattr(key, "__name__", None) or repr(key)
    return text if len(text) <= 40 else text[:37] + "..."
