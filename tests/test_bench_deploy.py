"""slimnorm.bench.deploy: its tables hold what the runtimes give, checked independently."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.bench import deploy
from slimnorm.data import datasets
from tests import export_helpers as helpers

from script_helpers import digits_run

pytest.importorskip('ai_edge_litert')
pytest.importorskip('tf2onnx')


@pytest.fixture(autouse=True)
def _own_thread_pools_stay_in_this_module(monkeypatch):
    # deploy.main sets TF_OVERRIDE_GLOBAL_THREADPOOL in its process; here the processes
    # that later tests start must not inherit it.
    monkeypatch.setenv('TF_OVERRIDE_GLOBAL_THREADPOOL', '1')


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
    assert 'Where the bytes go:' in out and '| tflite_int8 | ' in out


def _kernels(model_name, num_classes, image_size, num_channels):
    """(parameters, output channels) of the network's kernels, from its TF variables."""
    from slimnorm.export import freeze
    graph = freeze.build_inference_graph(model_name, num_classes, image_size=image_size,
                                         num_channels=num_channels)
    with graph.as_default():
        shapes = [v.shape.as_list() for v in tf.compat.v1.global_variables()
                  if v.shape.ndims >= 2]
    return sum(int(np.prod(s)) for s in shapes), sum(s[-1] for s in shapes)


def test_model_size_composition_counts_the_kernels():
    from slimnorm.bench import model_size
    graph_def, _, calibration = deploy.random_frozen_graph('small_convnet', 10, 16, 1, 4)
    models = deploy.convert_all(graph_def, calibration)
    sizes = {name: model_size.composition(name, data) for name, data in models.items()}
    parameters, channels = _kernels('small_convnet', 10, 16, 1)
    for name, parts in sizes.items():
        assert parts['file'] == len(models[name])
        assert min(parts.values()) >= 0, (name, parts)
        assert parts['weights'] == (parameters if name.endswith('int8') else 4 * parameters)
    # Per output channel an int8 TFLite model keeps the weights' and the bias's scale
    # (4 bytes) and zero point (8 bytes), and a 4-byte int32 bias.
    assert sizes['tflite_int8']['quantization'] >= 2 * 12 * channels
    assert sizes['tflite_int8']['vectors'] <= 4 * channels
    assert sizes['onnx_int8']['quantization'] > 0 == sizes['onnx_float32']['quantization']
    table = model_size.table(sizes)
    assert '| tflite_int8 |' in table and '| 4.00x |' in table
    with pytest.raises(ValueError, match="fmt='caffe'"):
        model_size.composition('caffe', b'')


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


def test_random_network_int8_tracks_tf():
    # With the initial moving statistics (0 and 1) a random MobileNet v1's logits are
    # about 1e-12 and its int8 TFLite model returns zeros (relative error 1): the bench
    # calibrates them, so that its int8 error column means something. A random network
    # amplifies each layer's rounding (relative error 0.2-0.5), so the check is that the
    # int8 logits follow TF's.
    from slimnorm.export import freeze, tflite
    graph_def, shape, calibration = deploy.random_frozen_graph('mobilenet_v1', 10, 64, 3)
    images = np.random.RandomState(7).uniform(-1, 1, [4] + shape[1:]).astype(np.float32)
    reference = freeze.run_graph_def(graph_def, images)[0]
    assert np.std(reference) > 1e-2
    int8 = tflite.run(tflite.convert(graph_def, int8=True, representative=calibration),
                      images)['logits']
    assert np.corrcoef(int8.ravel(), reference.ravel())[0, 1] > 0.8


_THREADS_CHILD = '''
import os
from slimnorm.bench import deploy
deploy.per_session_thread_pools()
import tensorflow as tf
graph = tf.Graph()
with graph.as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, 2], name='input')
    tf.identity(images * 2.0, name='logits')
first = tf.compat.v1.Session(graph=graph)  # TensorFlow's default pool: every core
first.run('logits:0', {'input:0': [[1.0, 2.0]]})
before = len(os.listdir('/proc/self/task'))
run, sess = deploy.tensorflow_runner(graph.as_graph_def().SerializeToString(), 6)
assert run([[1.0, 2.0]]).tolist() == [[2.0, 4.0]]
print(len(os.listdir('/proc/self/task')) - before)
'''


def test_tensorflow_gets_the_threads_it_is_given():
    # Without a pool per Session, the first Session's pool (every core) would run the
    # float32 baseline whatever --threads says, and no thread would be added here.
    import subprocess
    import sys
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    env.pop('TF_OVERRIDE_GLOBAL_THREADPOOL', None)
    out = subprocess.run([sys.executable, '-c', _THREADS_CHILD], capture_output=True,
                         text=True, timeout=120, env=env, check=True).stdout
    assert int(out.split()[-1]) >= 6
