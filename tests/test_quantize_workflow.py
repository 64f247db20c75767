"""Quantization-aware training end to end on digits: train --quantize_delay ->
eval --quantize -> export --quantize, and the frozen fake-quant graph of a checkpoint."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.data import datasets
from slimnorm.export import freeze
from slimnorm.quantize import freeze as quantized_freeze
from tests import export_helpers

from script_helpers import run_script

STEPS, DELAY = 200, 100


@pytest.fixture(scope='module')
def qat_dir(tmp_path_factory):
    train_dir = str(tmp_path_factory.mktemp('qat') / 'train')
    done = run_script('train.py', '--dataset_name', 'digits', '--train_dir', train_dir,
                      '--max_number_of_steps', STEPS, '--quantize_delay', DELAY)
    assert done.returncode == 0, done.stderr[-2000:]
    return train_dir


def _eval(train_dir, *flags):
    done = run_script('eval.py', '--checkpoint_path', train_dir, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_train_quantize_delay_then_eval_quantize_on_digits(qat_dir):
    with open(os.path.join(qat_dir, 'run_config.json')) as f:
        assert json.load(f)['quantize_delay'] == DELAY
    reader = tf.train.load_checkpoint(qat_dir)
    names = set(reader.get_variable_to_shape_map())
    for layer in ('conv1', 'conv5', 'logits'):
        scope = 'SmallConvNet/' + layer
        assert {scope + '/act_quant/min', scope + '/act_quant/max',
                scope + '/weights_quant/min', scope + '/weights_quant/max'} <= names
    assert 'SmallConvNet/conv1/BatchNorm/moving_variance' in names  # slim's names kept
    # The ranges moved from their initial -6 / 6 toward the data's.
    assert reader.get_tensor('SmallConvNet/conv1/act_quant/max') < 6.0
    assert reader.get_tensor('SmallConvNet/conv1/act_quant/min') > -6.0
    # The moving statistics kept updating (not frozen: no freeze_bn_delay).
    assert np.abs(reader.get_tensor('SmallConvNet/conv1/BatchNorm/moving_mean')).max() > 1e-3
    default = _eval(qat_dir)                   # a QAT run evaluates quantized by default
    explicit = _eval(qat_dir, '--quantize')
    float_eval = _eval(qat_dir, '--noquantize')
    assert default['quantized'] and explicit['quantized'] and 'quantized' not in float_eval
    assert default['top1'] == explicit['top1']
    assert explicit['top1'] >= 0.9, explicit
    assert abs(explicit['top1'] - float_eval['top1']) <= 0.02, (explicit, float_eval)


def test_a_qat_run_cannot_be_resumed_in_float(qat_dir):
    done = run_script('train.py', '--dataset_name', 'digits', '--train_dir', qat_dir,
                      '--max_number_of_steps', STEPS + 10)
    assert done.returncode == 2, done.stderr[-2000:]
    assert 'quantize_delay=-1 (was 100)' in done.stderr


def test_export_quantize_writes_the_frozen_fake_quant_graph(qat_dir, tmp_path):
    output = str(tmp_path / 'digits_int8_ready.pb')
    done = run_script('export_inference_graph.py', '--model_name', 'small_convnet',
                      '--dataset_name', 'digits', '--image_size', 8, '--num_channels', 1,
                      '--checkpoint_path', qat_dir, '--quantize', '--output_file', output)
    assert done.returncode == 0, done.stderr[-2000:]
    graph_def = freeze.read_graph_def(output)
    types = export_helpers.op_types(graph_def)
    assert 'FusedBatchNormV3' not in types and 'VarHandleOp' not in types
    # Weights and outputs of the five convolutions and the logits layer.
    assert quantized_freeze.count_fake_quant_ops(graph_def) == 12
    data = datasets.load('digits')
    logits = freeze.run_graph_def(graph_def, data.test_images, ['logits'])[0]
    accuracy = float(np.mean(np.argmax(logits, 1) == data.test_labels))
    assert accuracy == pytest.approx(_eval(qat_dir, '--quantize')['top1'], abs=1e-9)


def test_a_float_checkpoint_is_refused_by_the_quantized_freeze(tmp_path):
    checkpoint = export_helpers.train_checkpoint(str(tmp_path), 'small_convnet', 8, steps=1)
    with pytest.raises(ValueError, match='--quantize_delay') as info:
        quantized_freeze.freeze_quantized_graph(checkpoint, 'small_convnet', 10,
                                                image_size=8, num_channels=1)
    assert 'act_quant' in str(info.value) and '\n' not in str(info.value)


def test_quantize_flags_are_checked_before_tensorflow():
    done = run_script('train.py', '--quantize_delay', -2, '--train_dir', '/nonexistent/x')
    assert done.returncode == 2 and 'quantize_delay' in done.stderr
    done = run_script('train.py', '--quantize_delay', 0, '--normalizer', 'group',
                      '--train_dir', '/nonexistent/x')
    assert done.returncode == 2 and "normalizer='group'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_research_slims_quantized_mobilenet_recipe_runs_end_to_end(tmp_path):
    """train_image_classifier --quantize_delay -> eval_image_classifier --quantize ->
    export_inference_graph --quantize --output_format tflite, research/slim's script names and
    flags, on a small MobileNet v1 (depth 0.25, 32x32 digits): the int8 interpreter's top-1
    agrees with the fake-quant eval graph (the export checks it on the test split, >= 99 %)."""
    train_dir = str(tmp_path / 'mobilenet')
    done = run_script('train_image_classifier.py', '--train_dir', train_dir,
                      '--dataset_name', 'digits', '--model_name', 'mobilenet_v1',
                      '--model_kwargs', '{"depth_multiplier": 0.25, "batch_norm_decay": 0.9}',
                      '--train_image_size', 32, '--optimizer', 'momentum',
                      '--learning_rate', 0.1, '--max_number_of_steps', 300,
                      '--quantize_delay', 150, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_script('eval_image_classifier.py', '--checkpoint_path', train_dir, '--quantize',
                      timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics['quantized'] and metrics['top1'] >= 0.8, metrics
    output = str(tmp_path / 'mobilenet_int8.tflite')
    done = run_script('export_inference_graph.py', '--checkpoint_path', train_dir, '--quantize',
                      '--output_format', 'tflite', '--output_file', output, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'int8 (quantization-aware ranges)' in done.stdout and os.path.getsize(output) > 0
    agreement = float(done.stdout.split('top-1 agreement ')[1].split(' %')[0])
    assert agreement >= 99.0, done.stdout
