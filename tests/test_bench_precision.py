"""`slimnorm bench precision` (slimnorm.bench.precision) on the smallest case."""
import json
import os

import pytest

import slimnorm
from slimnorm import precision
from slimnorm.bench import precision as bench

NO_BF16 = precision.unavailable_reason('bfloat16')
pytestmark = pytest.mark.skipif(NO_BF16 is not None, reason=f'bfloat16: {NO_BF16}')


def test_writes_a_run_folder_with_the_machine_and_the_ratios(tmp_path, capsys):
    assert bench.main(['--models', 'small_convnet', '--normalizers', 'batch', '--modes',
                       'inference', '--batches', '8', '--rounds', '2', '--warmup', '1',
                       '--profile_model', 'small_convnet', '--out_dir', str(tmp_path)]) == 0
    (folder,) = os.listdir(tmp_path)
    with open(tmp_path / folder / 'precision.json') as f:
        record = json.load(f)
    assert record['machine']['cpu_flags']['avx512_bf16'] or \
        record['machine']['cpu_flags']['amx_bf16']
    (case,) = record['cases']
    assert case['float32_ms'] > 0 and case['low_ms'] > 0 and case['speedup'] > 0
    (profile,) = record['profile']
    assert profile['casts'] > 0 and abs(sum(profile['op_share'].values()) - 1) < 0.01
    assert '| small_convnet | batch | inference | 8 |' in capsys.readouterr().out


def test_kernels_on_the_infer_list_save_casts_around_group_norm():
    if not slimnorm.kernels_available()[0]:
        pytest.skip('no fused kernels')
    with_list = bench.profile_step('small_convnet', 'group', 4, 0, kernel_list=True)
    without = bench.profile_step('small_convnet', 'group', 4, 0, kernel_list=False)
    # Without them each of the 5 group norms (forward and gradient) casts
    # its bfloat16 input to float32 and its output back.
    assert with_list['casts'] + 10 <= without['casts'], (with_list, without)
    assert precision.INFERLIST_ENV in os.environ  # the ablation restored the variable


def test_bad_flags_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(['--rounds', '0'])
    assert exit_.value.code == 2
    assert "argument --rounds: '0' is not a positive integer; accepted: integers >= 1" in capsys.readouterr().err


def test_parity_experiment_writes_both_precisions_on_the_same_recipe(tmp_path):
    from slimnorm.bench import exp_precision_parity as parity
    from slimnorm.cli import demo
    if not os.path.isdir(demo.FASHION_MNIST_DIR):
        pytest.skip(f'Fashion-MNIST is not installed ({demo.FASHION_MNIST_DIR})')
    assert parity.main(['--part', 'demo', '--seeds', '0', '--normalizers', 'batch',
                        '--max_steps', '10', '--out_dir', str(tmp_path)]) == 0
    with open(tmp_path / 'precision_parity.json') as f:
        record = json.load(f)
    assert [(r['mixed_precision'], r['seed']) for r in record['demo']] == [
        ('none', 0), ('bfloat16', 0)]
    assert record['recipe']['max_steps'] == 10 and record['machine']['bf16_instructions']
    assert all(0.0 <= r['top1'] <= 1.0 for r in record['demo'])
