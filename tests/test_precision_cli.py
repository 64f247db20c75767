"""--mixed_precision bfloat16 through the commands: train, eval, export, precise BN (digits)."""
import json

import numpy as np
import pytest
import tensorflow as tf

from slimnorm import precision
from slimnorm.cli import eval as eval_cli
from slimnorm.cli import train as train_cli
from slimnorm.export import cli as export_cli
from slimnorm.export import freeze
from slimnorm.export import mixed_precision as export_mp

NO_BF16 = precision.unavailable_reason('bfloat16')
pytestmark = pytest.mark.skipif(NO_BF16 is not None, reason=f'bfloat16: {NO_BF16}')


@pytest.fixture(scope='module')
def bf16_run(tmp_path_factory):
    train_dir = str(tmp_path_factory.mktemp('bf16') / 'run')
    assert train_cli.main(['--train_dir', train_dir, '--max_number_of_steps', '200',
                           '--log_every_steps', '100', '--mixed_precision', 'bfloat16']) == 0
    return train_dir


def _top1(capsys, *argv):
    assert eval_cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])['top1']


def test_train_eval_in_both_precisions(bf16_run, capsys):
    with open(f'{bf16_run}/run_config.json') as f:
        assert json.load(f)['mixed_precision'] == 'bfloat16'
    bf16 = _top1(capsys, '--checkpoint_path', bf16_run, '--mixed_precision', 'bfloat16')
    fp32 = _top1(capsys, '--checkpoint_path', bf16_run)  # the run's precision is not inherited
    assert bf16 > 0.9 and fp32 > 0.9
    assert abs(bf16 - fp32) < 0.02


def test_export_rewrites_ahead_of_time_and_matches_float32(bf16_run, tmp_path, capsys):
    common = ['--model_name', 'small_convnet', '--dataset_name', 'digits', '--image_size', '8',
              '--num_channels', '1', '--checkpoint_path', bf16_run]
    fp32_file, bf16_file = str(tmp_path / 'fp32.pb'), str(tmp_path / 'bf16.pb')
    assert export_cli.export_main(common + ['--output_file', fp32_file]) == 0
    assert export_cli.export_main(common + ['--output_file', bf16_file,
                                            '--mixed_precision', 'bfloat16']) == 0
    assert 'Rewrote for bfloat16' in capsys.readouterr().out
    fp32_def, bf16_def = freeze.read_graph_def(fp32_file), freeze.read_graph_def(bf16_file)
    assert not export_mp.sixteen_bit_ops(fp32_def, tf.bfloat16)
    converted = {n.op for n in bf16_def.node if n.name in
                 set(export_mp.sixteen_bit_ops(bf16_def, tf.bfloat16))}
    assert {'Conv2D', 'FusedBatchNormV3', 'MatMul'} <= converted
    # Weights stay float32 constants, cast on the way in; input and outputs float32.
    assert {n.attr['dtype'].type for n in bf16_def.node if n.op == 'Const'} <= {
        tf.float32.as_datatype_enum, tf.int32.as_datatype_enum, tf.int64.as_datatype_enum}
    from slimnorm.data import datasets
    data = datasets.load('digits')
    images = data.test_images[:200]
    fp32_logits, _ = freeze.run_graph_def(fp32_def, images)
    bf16_logits, bf16_probs = freeze.run_graph_def(bf16_def, images)
    assert bf16_logits.dtype == np.float32 and bf16_probs.dtype == np.float32
    agree = np.mean(np.argmax(fp32_logits, 1) == np.argmax(bf16_logits, 1))
    assert agree >= 0.97, agree


def test_export_without_checkpoint_is_refused(capsys):
    with pytest.raises(SystemExit):
        export_cli.export_main(['--model_name', 'small_convnet', '--output_file', 'x.pb',
                                '--mixed_precision', 'bfloat16'])
    assert '--mixed_precision needs --checkpoint_path' in capsys.readouterr().err


def test_precise_bn_in_bfloat16_keeps_float32_statistics(bf16_run, tmp_path):
    output = str(tmp_path / 'precise' / 'model.ckpt')
    assert export_cli.precise_bn_main(['--checkpoint_path', bf16_run, '--output_path', output,
                                       '--image_size', '8', '--num_batches', '10',
                                       '--mixed_precision', 'bfloat16']) == 0
    old = tf.train.load_checkpoint(tf.train.latest_checkpoint(bf16_run))
    new = tf.train.load_checkpoint(output)
    names = [n for n in new.get_variable_to_shape_map() if n.endswith('moving_mean')]
    assert names and all(new.get_variable_to_dtype_map()[n] == tf.float32 for n in names)
    assert any(not np.allclose(old.get_tensor(n), new.get_tensor(n)) for n in names)


def test_tiny_demo_in_bfloat16(tmp_path, capsys):
    from slimnorm.cli import demo
    assert demo.main(['--dataset', 'digits', '--train_dir', str(tmp_path / 'demo'),
                      '--max_steps', '40', '--mixed_precision', 'bfloat16']) == 0
    assert 'Test accuracy: ' in capsys.readouterr().out
    with open(tmp_path / 'demo' / 'run_config.json') as f:
        assert json.load(f)['mixed_precision'] == 'bfloat16'


def test_bfloat16_run_fine_tunes_and_resumes_in_float32(bf16_run, tmp_path):
    import shutil
    tuned = str(tmp_path / 'tuned')
    assert train_cli.main(['--train_dir', tuned, '--checkpoint_path', bf16_run,
                           '--max_number_of_steps', '20', '--log_every_steps', '20']) == 0
    resumed = str(tmp_path / 'resumed')
    shutil.copytree(bf16_run, resumed)
    assert train_cli.main(['--train_dir', resumed, '--max_number_of_steps', '220',
                           '--log_every_steps', '20']) == 0  # float32 from the bf16 run's step 200
    assert tf.train.load_checkpoint(resumed).get_tensor('global_step') == 220
