"""Data for training and evaluation, read from installed files (nothing downloads).

`slimnorm.data.datasets`: the in-memory image sets (digits, Fashion-MNIST,
MNIST-format IDX directories) and the deterministic batch schedule.
"""
