"""export_inference_graph --output_format tflite / onnx on a digits run.

Each model is run here by its own runtime (ai-edge-litert's Interpreter,
onnxruntime), not through slimnorm's wrappers, and compared with the
checkpoint's eval-mode logits from an unfrozen TensorFlow graph.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.data import datasets
from slimnorm.export import checked_write, cli, freeze
from tests import export_helpers as helpers

from script_helpers import ROOT, digits_run, script_env

pytest.importorskip('ai_edge_litert')
pytest.importorskip('tf2onnx')
pytest.importorskip('onnxruntime')


def _flags(train_dir, output_file, *more):
    return ['--model_name', 'small_convnet', '--dataset_name', 'digits', '--image_size', '8',
            '--num_channels', '1', '--checkpoint_path', str(train_dir),
            '--output_file', str(output_file)] + [str(m) for m in more]


@pytest.fixture(scope='module')
def run():
    """(train_dir, test images, test labels, TensorFlow's eval logits on them)."""
    config, _ = digits_run()
    data = datasets.load('digits')
    logits = helpers.eval_logits(tf.train.latest_checkpoint(config.train_dir), 'small_convnet',
                                 data.test_images, num_classes=10)
    return config.train_dir, data.test_images, data.test_labels, logits


def tflite_logits(path, images):
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path))
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail['index'], list(images.shape))
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    scale, zero = detail['quantization']
    if detail['dtype'] != np.float32:
        images = np.clip(np.round(images / scale + zero), -128, 127).astype(detail['dtype'])
    interp.set_tensor(detail['index'], images)
    interp.invoke()
    out = next(o for o in interp.get_output_details() if o['name'] == 'logits')
    value = interp.get_tensor(out['index'])
    if out['dtype'] != np.float32:
        scale, zero = out['quantization']
        value = (value.astype(np.float32) - zero) * scale
    return detail['dtype'], value


def test_tflite_float_matches_tensorflow(run, tmp_path, capsys):
    train_dir, images, _, logits = run
    path = tmp_path / 'model.tflite'
    assert cli.export_main(_flags(train_dir, path, '--output_format', 'tflite')) == 0
    assert 'checked against TensorFlow on 359 images' in capsys.readouterr().out
    dtype, lite = tflite_logits(path, images)
    assert dtype == np.float32
    assert helpers.rel_err(lite, logits) <= 1e-4
    assert os.listdir(tmp_path) == ['model.tflite']  # no temporary file left


def test_tflite_int8_post_training_keeps_accuracy(run, tmp_path):
    train_dir, images, labels, logits = run
    path = tmp_path / 'int8.tflite'
    assert cli.export_main(_flags(train_dir, path, '--output_format', 'tflite',
                                  '--representative_dataset', 'train')) == 0
    dtype, lite = tflite_logits(path, images)
    assert dtype == np.int8  # full integer: int8 input
    agreement = np.mean(lite.argmax(1) == logits.argmax(1))
    assert agreement >= 0.99
    float_accuracy = np.mean(logits.argmax(1) == labels)
    int8_accuracy = np.mean(lite.argmax(1) == labels)
    assert int8_accuracy >= float_accuracy - 0.02, (int8_accuracy, float_accuracy)
    float_size = os.path.getsize(helpers_frozen(run, tmp_path))
    assert os.path.getsize(path) < float_size / 3


def helpers_frozen(run, tmp_path):
    path = tmp_path / 'frozen.pb'
    assert cli.export_main(_flags(run[0], path)) == 0
    return path


def test_onnx_float_round_trip_at_the_stated_opset(run, tmp_path):
    import onnx
    import onnxruntime
    train_dir, images, _, logits = run
    path = tmp_path / 'model.onnx'
    assert cli.export_main(_flags(train_dir, path, '--output_format', 'onnx',
                                  '--onnx_opset', '15')) == 0
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [15]
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['input:0']
    out = session.run(['logits:0'], {'input:0': images})[0]
    assert helpers.rel_err(out, logits) <= 1e-4


def test_failed_check_leaves_no_file_and_keeps_an_old_one(run, tmp_path, capsys, monkeypatch):
    train_dir = run[0]
    path = tmp_path / 'model.tflite'
    # No TFLite model equals TensorFlow's to 1e-12: the check must fail.
    monkeypatch.setattr(checked_write, 'FLOAT_TOLERANCE', 1e-12)
    monkeypatch.setattr(checked_write.check_close, '__defaults__', (1e-12,))
    assert cli.export_main(_flags(train_dir, path, '--output_format', 'tflite')) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'model not written' in err[0] and 'accepted: <= 1e-12' in err[0]
    assert os.listdir(tmp_path) == []
    path.write_bytes(b'previous')
    assert cli.export_main(_flags(train_dir, path, '--output_format', 'onnx')) == 1
    assert path.read_bytes() == b'previous' and os.listdir(tmp_path) == ['model.tflite']


def test_tampered_model_is_not_written(run, tmp_path):
    """A TFLite model whose logits weights were zeroed fails the check; nothing is left."""
    from slimnorm.export import tflite
    train_dir, images = run[0], run[1][:64]
    graph = freeze.build_inference_graph('small_convnet', 10, image_size=8, num_channels=1)
    graph_def = freeze.restore_and_freeze(graph, tf.train.latest_checkpoint(train_dir))
    content = bytearray(tflite.convert(graph_def))
    weights = [tf.make_ndarray(n.attr['value'].tensor) for n in graph_def.node
               if n.op == 'Const' and len(n.attr['value'].tensor.tensor_shape.dim) == 2]
    raw = np.ascontiguousarray(weights[-1].T).tobytes()  # TFLite's [out, in]
    start = content.find(raw)
    assert start > 0
    content[start:start + len(raw)] = bytes(len(raw))
    reference = dict(zip(freeze.OUTPUT_NAMES, freeze.run_graph_def(graph_def, images)))
    with pytest.raises(checked_write.ExportCheckError, match='relative error'):
        checked_write.write_checked(str(tmp_path / 'm.tflite'), bytes(content), tflite.run,
                                    images, reference, checked_write.check_close)
    assert os.listdir(tmp_path) == []


def test_bad_flags_and_missing_extra_are_one_line(run, tmp_path):
    base = ['--model_name', 'small_convnet', '--num_classes', '10',
            '--output_file', str(tmp_path / 'm')]
    cases = [
        (base + ['--output_format', 'tflite'], '--output_format tflite needs --checkpoint_path'),
        (base + ['--checkpoint_path', run[0], '--output_format', 'onnx'],
         "output_format=onnx needs tf2onnx, which is not installed; install it with: "
         "pip install 'slimnorm[onnx]'"),
        (base + ['--output_format', 'frozen', '--representative_dataset', 'train'],
         '--representative_dataset with --output_format frozen'),
        (base + ['--onnx_opset', '9'], '--onnx_opset 9 is not supported; accepted: 13 to 18'),
    ]
    for argv, message in cases:
        code = ('import sys; sys.modules["tf2onnx"] = None\n'
                'from slimnorm.export import cli\n'
                'sys.exit(cli.export_main(%r))' % (argv,))
        result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                                env=script_env(), cwd=ROOT, timeout=120)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        if message:
            assert message in lines[0]
    code = ('import sys; sys.modules["tf2onnx"] = None\n'
            'from slimnorm.export import deploy_cli, formats\n'
            'print(formats.missing_extra("onnx")); print(formats.missing_extra("tflite"))\n'
            'import slimnorm; assert "tensorflow" not in sys.modules\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env=script_env(), cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        "output_format=onnx needs tf2onnx, which is not installed; install it with: "
        "pip install 'slimnorm[onnx]'", 'None']


def fake_quant_graph(seed=0):
    """A hand-built quantization-aware graph: FakeQuant on the input, the conv
    weights (per channel), the activations and the logits (range [-10, 10])."""
    rng = np.random.RandomState(seed)
    fq = tf.quantization.fake_quant_with_min_max_vars
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1], name='input')
        w = rng.randn(3, 3, 1, 6).astype(np.float32)
        bound = np.abs(w).max((0, 1, 2))
        wq = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            tf.constant(w), tf.constant(-bound), tf.constant(bound), narrow_range=True)
        net = tf.nn.conv2d(fq(x, tf.constant(0.0), tf.constant(1.0)), wq, 1, 'SAME')
        net = tf.nn.relu6(tf.nn.bias_add(net, tf.constant(rng.randn(6).astype(np.float32))))
        net = fq(net, tf.constant(0.0), tf.constant(6.0))
        net = fq(tf.reduce_mean(net, [1, 2]), tf.constant(0.0), tf.constant(6.0))
        dense = rng.randn(6, 4).astype(np.float32)
        dense_q = fq(tf.constant(dense), tf.constant(-3.0), tf.constant(3.0), narrow_range=True)
        logits = fq(tf.matmul(net, dense_q), tf.constant(-10.0), tf.constant(10.0))
        tf.identity(logits, name='logits')
        tf.identity(tf.nn.softmax(logits), name='probabilities')
    return graph.as_graph_def()


def test_fake_quant_graph_converts_to_int8_with_its_own_ranges(tmp_path):
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    from slimnorm.export import onnx as onnx_export
    from slimnorm.export import tflite
    graph_def = fake_quant_graph()
    images = np.random.RandomState(1).rand(300, 8, 8, 1).astype(np.float32)
    reference = freeze.run_graph_def(graph_def, images)[0]
    path = tmp_path / 'qat.tflite'
    tflite.export_tflite(graph_def, str(path), images, int8=True, representative=images)
    dtype, lite = tflite_logits(path, images)
    assert dtype == np.int8
    assert np.mean(lite.argmax(1) == reference.argmax(1)) >= 0.99
    interp = Interpreter(model_path=str(path))
    logits = next(o for o in interp.get_output_details() if o['name'] == 'logits')
    # the logits' fake-quant range [-10, 10], not a calibrated one
    assert logits['quantization'][0] == pytest.approx(20.0 / 255, rel=1e-5)
    conv = [t for t in interp.get_tensor_details() if len(t['shape']) == 4
            and t['shape'][0] == 6]
    assert conv and all(t['dtype'] == np.int8 for t in conv)
    onnx_path = tmp_path / 'qat.onnx'
    onnx_export.export_onnx(graph_def, str(onnx_path), images)
    assert 'QuantizeLinear' in {n.op_type for n in onnx.load(str(onnx_path)).graph.node}


def test_static_batch_size_is_checked_in_batches(run, tmp_path):
    """--batch_size 4 fixes the input's batch; the check runs 359 images 4 at a time."""
    train_dir, images, _, logits = run
    for fmt in ('tflite', 'onnx'):
        path = tmp_path / ('model.' + fmt)
        assert cli.export_main(_flags(train_dir, path, '--output_format', fmt,
                                      '--batch_size', 4)) == 0
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(tmp_path / 'model.tflite'))
    assert list(interp.get_input_details()[0]['shape_signature']) == [4, 8, 8, 1]
    dtype, lite = tflite_logits(tmp_path / 'model.tflite', images[:4])
    assert helpers.rel_err(lite, logits[:4]) <= 1e-4


def test_without_run_config_float_is_checked_on_random_images_and_int8_refused(tmp_path,
                                                                               capsys):
    checkpoint = helpers.train_checkpoint(str(tmp_path / 'ckpt'), 'small_convnet', 8, steps=2)
    flags = ['--model_name', 'small_convnet', '--num_classes', '10', '--image_size', '8',
             '--num_channels', '1', '--checkpoint_path', checkpoint, '--output_format', 'tflite']
    assert cli.export_main(flags + ['--output_file', str(tmp_path / 'f.tflite')]) == 0
    assert '32 uniform random images (no run_config.json)' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.export_main(flags + ['--representative_dataset', 'train',
                                 '--output_file', str(tmp_path / 'q.tflite')])
    assert exit_info.value.code == 2
    assert 'no run_config.json in' in capsys.readouterr().err
    assert not (tmp_path / 'q.tflite').exists()


def test_unknown_representative_split_is_one_line(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.export_main(_flags(run[0], tmp_path / 'q.tflite', '--output_format', 'tflite',
                               '--representative_dataset', 'bogus'))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["slimnorm export: error: --representative_dataset bogus: "
                   "split='bogus' is not a split; use 'train' or 'test' (see --help)"]
    assert os.listdir(tmp_path) == []


def test_tfrecord_run_is_checked_on_its_validation_records(tmp_path, capsys):
    """A run on slim-format TFRecords: the check reads its validation split as eval does."""
    from slimnorm.train.config import TrainConfig, write_run_config
    from tests import tfrecord_helpers
    data_dir = tmp_path / 'records'
    tfrecord_helpers.write_digits(str(data_dir), splits=('train',), num_shards=1)
    images, labels = tfrecord_helpers.digits_uint8('test')
    tfrecord_helpers.write(str(data_dir), ['digits_validation_00000-of-00001.tfrecord'],
                           images[:40], labels[:40])
    train_dir = tmp_path / 'train'
    helpers.train_checkpoint(str(train_dir), 'small_convnet', 8, channels=3, steps=2)
    write_run_config(str(train_dir), TrainConfig(train_dir=str(train_dir), dataset='tfrecord',
                                                 data_dir=str(data_dir), image_size=8))
    flags = ['--model_name', 'small_convnet', '--num_classes', '10', '--image_size', '8',
             '--checkpoint_path', str(train_dir), '--output_format', 'tflite',
             '--representative_dataset', 'train', '--output_file', str(tmp_path / 'q.tflite')]
    assert cli.export_main(flags) == 0
    out = capsys.readouterr().out
    assert "on 40 images of split 'validation' of tfrecord" in out
    assert "200 images of split 'train'" in out
