"""Data for training and evaluation, read from installed files (nothing downloads).

`slimnorm.data.datasets`: the in-memory image sets (digits, Fashion-MNIST,
MNIST-format IDX directories) and the deterministic batch schedule.
`slimnorm.data.tfrecord`: research/slim's sharded TFRecord sets on tf.data.
`slimnorm.data.preprocessing`: slim's Inception preprocessing and a light one.
`slimnorm.data.convert`: image folders or in-memory sets -> slim-format TFRecords
(`slimnorm build-tfrecords`).
"""
