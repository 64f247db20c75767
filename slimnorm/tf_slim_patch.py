"""Alias of :mod:`slimnorm.legacy.patch` (``patch_tf_slim`` and friends), kept
because user code imports ``slimnorm.tf_slim_patch``.

The module object is the same one: ``slimnorm.tf_slim_patch is
slimnorm.legacy.patch``.
"""
import sys

from slimnorm.legacy import patch as _patch

sys.modules[__name__] = _patch
