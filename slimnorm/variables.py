"""Creation of normalisation parameters as tf-slim model variables.

slim's layers create every parameter with `slim.model_variable` (so it lands
in GLOBAL_VARIABLES and MODEL_VARIABLES), honour `variables_collections`
given as a list or as a dict per parameter name, and pick up a partitioner
from the enclosing variable scope. This module does exactly that, plus one
check slim left to a cryptic get_variable message: reusing a scope with
inputs of another channel count.
"""

import tensorflow as tf
import tf_slim as slim

ZEROS = tf.compat.v1.zeros_initializer
ONES = tf.compat.v1.ones_initializer


def collections_for(variables_collections, name):
    """slim's rule: a dict gives per-variable collections, a list is for all."""
    if isinstance(variables_collections, dict):
        return variables_collections.get(name)
    return variables_collections


def _check_reuse_shape(name, shape):
    """Names the scope and both shapes when a reused variable would not fit."""
    scope = tf.compat.v1.get_variable_scope()
    full_name = "%s/%s" % (scope.name, name) if scope.name else name
    for existing in tf.compat.v1.global_variables():
        if existing.op.name == full_name:
            if existing.shape.as_list() != list(shape):
                raise ValueError(
                    "reuse: scope %r was built for parameters of shape %s but is now "
                    "reused with inputs that need shape %s (a different channel "
                    "count); use a new scope or inputs with the same channels." % (
                        scope.name, existing.shape.as_list(), list(shape)))
            return


def parameter(name, shape, dtype, initializers, regularizers, variables_collections,
              trainable, default_initializer, partitioned=True):
    """Creates (or reuses) one model variable `name` under the current scope.

    `initializers`/`regularizers` are the user's dicts keyed by parameter name.
    Moving statistics pass `partitioned=False`: their moving-average update
    assigns the whole variable, and slim kept them whole for checkpoint
    compatibility.
    """
    _check_reuse_shape(name, shape)
    collections = list(collections_for(variables_collections, name) or [])
    kwargs = dict(
        shape=shape,
        dtype=dtype,
        initializer=initializers.get(name, default_initializer()),
        regularizer=regularizers.get(name),
        collections=collections or None,
        trainable=trainable,
    )
    if partitioned:
        return slim.model_variable(name, **kwargs)
    with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(),
                                     auxiliary_name_scope=False) as local_scope:
        local_scope.set_partitioner(None)
        return slim.model_variable(name, **kwargs)


def as_tensor(variable, dtype=None):
    """Reads a (possibly partitioned) variable as one tensor."""
    if isinstance(variable, (list, tuple)) or hasattr(variable, "_variable_list"):
        value = tf.concat(list(variable), axis=0)
    else:
        value = tf.convert_to_tensor(variable)
    if dtype is not None and value.dtype != dtype:
        value = tf.cast(value, dtype)
    return value


def add_to_collections(variable, variables_collections, name):
    """Adds `variable` (each part, if partitioned) to its collections, once each.

    slim's Keras-layer batch norm filled the user's collections this way
    after building the layer; None (a switched-off beta or gamma) is skipped.
    """
    if variable is None:
        return
    parts = list(variable) if hasattr(variable, "_variable_list") else [variable]
    for collection in collections_for(variables_collections, name) or []:
        present = tf.compat.v1.get_collection(collection)
        for part in parts:
            if not any(part is held for held in present):
                tf.compat.v1.add_to_collection(collection, part)
