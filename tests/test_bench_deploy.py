"""slimnorm.bench.deploy: its tables hold what the runtimes give, checked independently."""
import json

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.bench import deploy
from slimnorm.data import datasets
from tests import export_helpers as helpers

from script_helpers import digits_run

pytest.importorskip('ai_edge_litert')
pytest.importorskip('tf2onnx')


def test_latency_rows_for_every_format(tmp_path, capsys):
    assert deploy.main(['latency', '--model_name', 'small_convnet', '--num_classes', '10',
                        '--num_channels', '1', '--image_size', '16', '--batch_sizes', '1,2',
                        '--rounds', '2', '--min_sample_s', '0',
                        '--output_dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('CPU: ') and '| tflite_int8 | 2 |' in out
    result = json.loads((tmp_path / 'deploy_latency_small_convnet.json').read_text())
    assert result['input_shape'] == [None, 16, 16, 1]
    rows = {(r['format'], r['batch']): r for r in result['rows']}
    assert set(rows) == {(f, b) for f in deploy.FORMATS for b in (1, 2)}
    for fmt in ('tflite_float32', 'onnx_float32'):
        assert rows[(fmt, 1)]['relative_error_vs_tf'] <= 1e-4
    for fmt in ('tflite_int8', 'onnx_int8'):
        assert rows[(fmt, 1)]['size_bytes'] < rows[('tf_float32', 1)]['size_bytes'] / 3
    assert rows[('tf_float32', 2)]['speedup_vs_tf_float32'] == 1.0
    assert result['cpu']['model'] and result['cpu']['cores'] >= 1


def test_accuracy_of_a_digits_run(tmp_path):
    config, _ = digits_run()
    assert deploy.main(['accuracy', '--checkpoint_path', config.train_dir,
                        '--output_dir', str(tmp_path)]) == 0
    result = json.loads((tmp_path / 'deploy_accuracy_small_convnet.json').read_text())
    rows = {r['format']: r for r in result['rows']}
    data = datasets.load('digits')
    logits = helpers.eval_logits(tf.train.latest_checkpoint(config.train_dir), 'small_convnet',
                                 data.test_images, num_classes=10)
    expected = 100.0 * np.mean(logits.argmax(1) == data.test_labels)
    assert rows['tf_float32']['top1'] == pytest.approx(expected)
    assert rows['tflite_float32']['top1'] == pytest.approx(expected)
    assert rows['tflite_int8']['points_below_tf_float32'] <= 2.0
    assert result['goals'] == {'ptq_int8_tflite_within_2_points': True}


def test_bad_arguments_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        deploy.main(['latency', '--batch_sizes', '0,x'])
    assert exit_info.value.code == 2
    assert deploy.main(['accuracy', '--checkpoint_path', str(tmp_path),
                        '--output_dir', str(tmp_path / 'out')]) == 2
    assert 'has no run_config.json' in capsys.readouterr().err
