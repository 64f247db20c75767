"""Reading every tensor of a checkpoint, and writing a dict as a checkpoint.

The tools of this package produce new values for a few variables (precise
batch-norm statistics, imported Caffe parameters) and must keep everything
else of a checkpoint as it was, under the same names; slim's name-based
`Saver` format is what slim code and `scripts/eval.py` restore.
"""

import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1


def read_checkpoint(prefix):
    """{variable name: numpy array} of every tensor in the checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name)
            for name in reader.get_variable_to_shape_map()}


def write_checkpoint(values, prefix):
    """Saves {name: array} as a name-based (tf.compat.v1.train.Saver) checkpoint.

    Returns the prefix written. The directory is created; its `checkpoint`
    state file then points at this checkpoint.
    """
    if not values:
        raise ValueError('values is empty: nothing to write to %r' % (prefix,))
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = {}
        for index, (name, value) in enumerate(sorted(values.items())):
            value = np.asarray(value)
            variables[name] = tf1.Variable(tf.zeros(value.shape, value.dtype),
                                           name='v%d' % index)
        saver = tf1.train.Saver(variables)
        with tf1.Session() as sess:
            for name, variable in variables.items():
                variable.load(values[name], sess)
            return saver.save(sess, prefix)
