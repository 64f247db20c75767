"""Frozen inference graphs and SavedModels against the restored eval graph."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.export import freeze, names, saved_model
from tests import export_helpers as helpers

tf1 = tf.compat.v1


@pytest.fixture(scope='module')
def small_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp('ckpt')
    helpers.train_checkpoint(str(directory), 'small_convnet', 16, 1)
    return str(directory)


def test_inference_graph_names_and_shapes():
    graph = freeze.build_inference_graph('small_convnet', 7, image_size=16,
                                         batch_size=None, num_channels=1)
    assert graph.get_tensor_by_name('input:0').shape.as_list() == [None, 16, 16, 1]
    assert graph.get_operation_by_name('input').type == 'Placeholder'
    for name in ('logits', 'probabilities'):
        op = graph.get_operation_by_name(name)
        assert op.type == 'Identity' and op.outputs[0].shape.as_list() == [None, 7]
    graph = freeze.build_inference_graph('inception_v2', 5, batch_size=2, depth_multiplier=0.1)
    assert graph.get_tensor_by_name('input:0').shape.as_list() == [2, 224, 224, 3]


def test_frozen_graph_equals_restored_eval_graph(small_checkpoint):
    graph = freeze.build_inference_graph('small_convnet', 10, image_size=16, num_channels=1)
    frozen = freeze.restore_and_freeze(graph, small_checkpoint)
    assert not {'VarHandleOp', 'VariableV2', 'ReadVariableOp'} & helpers.op_types(frozen)
    inputs = helpers.images(4, 16, 1, seed=5)
    logits, probabilities = freeze.run_graph_def(frozen, inputs)
    expected = helpers.eval_logits(os.path.join(small_checkpoint, 'model.ckpt'),
                                   'small_convnet', inputs, num_classes=10)
    np.testing.assert_array_equal(logits, expected)
    softmax = np.exp(expected - expected.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, softmax / softmax.sum(1, keepdims=True),
                               rtol=1e-5, atol=1e-7)


def test_saved_model_loads_and_serves(small_checkpoint, tmp_path):
    graph = freeze.build_inference_graph('small_convnet', 10, image_size=16, num_channels=1)
    frozen = freeze.restore_and_freeze(graph, small_checkpoint)
    export_dir = str(tmp_path / 'sm')
    saved_model.write_saved_model(frozen, export_dir)
    inputs = helpers.images(3, 16, 1, seed=6)
    served = tf.saved_model.load(export_dir).signatures['serving_default'](
        input=tf.constant(inputs))
    expected = freeze.run_graph_def(frozen, inputs)
    np.testing.assert_allclose(served['logits'].numpy(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(served['probabilities'].numpy(), expected[1], rtol=1e-6)
    cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
    shown = subprocess.run([cli, 'show', '--dir', export_dir, '--tag_set', 'serve',
                            '--signature_def', 'serving_default'],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for line in ("inputs['input']", "outputs['logits']", "outputs['probabilities']"):
        assert line in shown.stdout
    with pytest.raises(ValueError, match='not empty'):
        saved_model.write_saved_model(frozen, export_dir)


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_path='.*' is a directory without"):
        freeze.restore_and_freeze(tf.Graph(), str(tmp_path))
    with pytest.raises(ValueError, match='is neither a directory with checkpoints nor'):
        freeze.restore_and_freeze(tf.Graph(), str(tmp_path / 'missing.ckpt'))
    with pytest.raises(ValueError, match="model_name='resnet'"):
        freeze.build_inference_graph('resnet', 10)
    assert names.num_classes_for('imagenet', labels_offset=1) == 1000
    assert names.num_classes_for(num_classes=7) == 7
    with pytest.raises(ValueError, match='exactly one of'):
        names.num_classes_for('imagenet', 10)
    with pytest.raises(ValueError, match="dataset_name='coco'"):
        names.num_classes_for('coco')
    with pytest.raises(ValueError, match='leaves no class'):
        names.num_classes_for(num_classes=1, labels_offset=1)
