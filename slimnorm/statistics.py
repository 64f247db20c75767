"""Two helpers every normalizer's statistics use: the shift and the count.

Why a shift: one pass of sums and sums of squares, sum(x^2)/n - mean^2,
cancels catastrophically when the mean is large against the spread (float32
inputs 1e4 + N(0, 1) lose every digit of the variance). Subtracting a value
taken from the data itself first (any value near the data works, and it
carries no gradient) makes both sums small, so the statistics keep the
precision of the spread.
"""

import tensorflow as tf


def first_values(x, axes):
    """x at index 0 of `axes` (keepdims, no gradient): a shift near the data."""
    begin = [0] * x.shape.rank
    size = [1 if axis in axes else -1 for axis in range(x.shape.rank)]
    return tf.stop_gradient(tf.slice(x, begin, size))


def count(x, axes, dtype=None):
    """Number of values of `x` along `axes` (n of n/(n-1)), as a float scalar.

    A constant when those sizes are static, a tensor from tf.shape otherwise.
    """
    dtype = dtype or x.dtype
    sizes = [x.shape[axis] for axis in axes]
    if all(size is not None for size in sizes):
        total = 1
        for size in sizes:
            total *= int(size)
        return tf.constant(float(total), dtype)
    return tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), list(axes))), dtype)
