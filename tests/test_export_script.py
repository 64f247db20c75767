"""scripts/export_inference_graph.py on a checkpoint written by scripts/train.py."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.data import datasets
from slimnorm.export import cli, freeze
from tests import export_helpers as helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    return subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', script)]
                          + [str(a) for a in args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def test_train_then_export_folded_frozen_graph_and_saved_model(tmp_path):
    train_dir, out = tmp_path / 'train', tmp_path / 'out'
    trained = _run('train.py', '--dataset', 'digits', '--train_dir', train_dir,
                   '--max_steps', 40, '--batch_size', 32, '--log_every_steps', 20)
    assert trained.returncode == 0, trained.stderr[-2000:]
    flags = ['--model_name', 'small_convnet', '--dataset_name', 'digits',
             '--image_size', 8, '--num_channels', 1, '--checkpoint_path', train_dir]
    plain = _run('export_inference_graph.py', *flags, '--output_file', out / 'frozen.pb')
    assert plain.returncode == 0, plain.stderr[-2000:]
    exported = _run('export_inference_graph.py', *flags, '--fold_batch_norms',
                    '--output_file', out / 'folded.pb', '--saved_model_dir', out / 'sm')
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert 'Folded 5 batch norm(s)' in exported.stdout

    images = datasets.load('digits').test_images[:50]
    expected = helpers.eval_logits(tf.train.latest_checkpoint(str(train_dir)),
                                   'small_convnet', images, num_classes=10)
    frozen = freeze.read_graph_def(str(out / 'frozen.pb'))
    folded = freeze.read_graph_def(str(out / 'folded.pb'))
    np.testing.assert_array_equal(freeze.run_graph_def(frozen, images)[0], expected)
    assert helpers.rel_err(freeze.run_graph_def(folded, images)[0], expected) < 1e-4
    assert 'FusedBatchNormV3' in helpers.op_types(frozen)
    assert 'FusedBatchNormV3' not in helpers.op_types(folded)
    served = tf.saved_model.load(str(out / 'sm')).signatures['serving_default'](
        input=tf.constant(images))
    assert helpers.rel_err(served['logits'].numpy(), expected) < 1e-4


def test_unfrozen_export_and_bad_flags(tmp_path, capsys):
    # In process: the command's main, as the console entry point calls it.
    assert cli.export_main(['--model_name', 'small_convnet', '--num_classes', '10',
                            '--output_file', str(tmp_path / 'graph.pb')]) == 0
    graph_def = freeze.read_graph_def(str(tmp_path / 'graph.pb'))
    assert 'VarHandleOp' in helpers.op_types(graph_def)
    capsys.readouterr()
    for args, message in [
            (['--fold_batch_norms'], '--fold_batch_norms needs --checkpoint_path'),
            (['--num_classes', '10', '--dataset_name', 'digits'], 'not both'),
            (['--dataset_name', 'coco'], "dataset_name='coco'"),
            (['--image_size', '0'], "'0' is not a positive integer"),
            (['--model_kwargs', '[1]'], 'is not a JSON object'),
            (['--checkpoint_path', str(tmp_path)], 'is a directory without checkpoints')]:
        with pytest.raises(SystemExit) as exit_info:
            cli.export_main(['--model_name', 'small_convnet', '--image_size', '8',
                             '--output_file', str(tmp_path / 'x.pb')] + args)
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1


def test_checkpoint_of_another_network_is_one_line(tmp_path, capsys):
    checkpoint = helpers.train_checkpoint(str(tmp_path), 'small_convnet', 8, steps=1,
                                          depths=[4, 4])
    with pytest.raises(SystemExit) as exit_info:
        cli.export_main(['--model_name', 'small_convnet', '--num_classes', '10',
                         '--image_size', '8', '--num_channels', '1',
                         '--checkpoint_path', checkpoint,
                         '--output_file', str(tmp_path / 'x.pb')])
    err = capsys.readouterr().err
    # No run_config.json beside it: the variables are checked before writing.
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert ('variable SmallConvNet/conv1/weights has shape [3, 3, 1, 32] in the graph but '
            '[3, 3, 1, 4] in checkpoint') in err
    assert not (tmp_path / 'x.pb').exists()


def test_flags_are_checked_before_tensorflow_loads():
    code = ('import sys\n'
            'from slimnorm.export import cli\n'
            'for main in (cli.export_main, cli.precise_bn_main, cli.caffe_main):\n'
            '    try:\n'
            '        main(["--output_file", "x.pb", "--output_path", "x", "--fold_batch_norms"])\n'
            '    except SystemExit as exit_:\n'
            '        assert exit_.code == 2, exit_.code\n'
            'assert "tensorflow" not in sys.modules\n')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=env, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count('error:') == 3
