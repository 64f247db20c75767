"""pytest plugin for running tf-slim's own bundled tests (`-p tf_slim_suite_plugin`).

Loaded by tests/test_tf_slim_suite.py into a child pytest that collects the
installed tf_slim package. Before collection it puts TensorFlow in graph mode
(tf-slim's tests are TF1 graph tests; their `__main__` blocks, which pytest
does not run, do the same) and, unless SLIMNORM_TF_SLIM_PATCH=0, applies
`patch_tf_slim()`. After collection it applies the patch again: the test
modules are themselves modules of the tf_slim package, imported during
collection, and the patch (idempotent) repairs each loaded tf_slim module.

The entries of tests/data/tf_slim_suite_exclusions.txt then apply:
`deselect` (run elsewhere) and `xfail` (strict: a test that starts passing
fails the run, so the list cannot go stale); `ignore`d files are never
passed to the child (tests/tf_slim_suite.py). With SLIMNORM_TF_SLIM_PATCH=0
(the unpatched baseline for the per-file counts) the list is not applied. If SLIMNORM_TF_SLIM_MATCHES names a file, the number of
collected tests each entry matched is written there as JSON.
"""
import json
import os

import pytest

EXCLUSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                          "tf_slim_suite_exclusions.txt")
KINDS = ("deselect", "ignore", "xfail")


def read_exclusions(path=EXCLUSIONS):
    """[(kind, node id relative to the tf_slim directory, reason)], in file order."""
    entries = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[0] not in KINDS:
                raise ValueError("%s:%d: expected '<%s> <node id> <reason>', got %r"
                                 % (path, number, "|".join(KINDS), line))
            entries.append(tuple(parts))
    return entries


def patching():
    return os.environ.get("SLIMNORM_TF_SLIM_PATCH", "1") != "0"


def _relative(nodeid):
    """'tf_slim/layers/x_test.py::C::t' -> 'layers/x_test.py::C::t' (rootdir may vary)."""
    marker = "tf_slim/"
    return nodeid[nodeid.rindex(marker) + len(marker):] if marker in nodeid else nodeid


def _matches(relative_id, pattern):
    return relative_id == pattern or relative_id.startswith(pattern + "::")


def pytest_configure(config):
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    if patching():
        from slimnorm.legacy.patch import patch_tf_slim

        patch_tf_slim(warn_captured=False)


def pytest_collection_modifyitems(session, config, items):
    if not patching():
        return
    from slimnorm.legacy.patch import patch_tf_slim

    patch_tf_slim(warn_captured=False)
    entries = read_exclusions()
    matched = {pattern: 0 for _, pattern, _ in entries}
    kept, deselected = [], []
    for item in items:
        relative = _relative(item.nodeid)
        hits = [(kind, reason) for kind, pattern, reason in entries if _matches(relative, pattern)]
        for _, pattern, _ in entries:
            matched[pattern] += _matches(relative, pattern)
        if any(kind == "deselect" for kind, _ in hits):
            deselected.append(item)
            continue
        for kind, reason in hits:
            if kind == "xfail":
                item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    if os.environ.get("SLIMNORM_TF_SLIM_MATCHES"):
        with open(os.environ["SLIMNORM_TF_SLIM_MATCHES"], "w", encoding="utf-8") as out:
            json.dump(matched, out)
