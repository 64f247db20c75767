"""Alias of :mod:`slimnorm.train.train_op` (the train-op helpers), kept because
user code imports ``slimnorm.training.create_train_op``.

The module object is the same one: ``slimnorm.training is
slimnorm.train.train_op``.
"""
import sys

from slimnorm.train import train_op as _train_op

sys.modules[__name__] = _train_op
