"""Smoke runs of the two paper experiments (`--quick`, in-process, one worker).

They check that each script runs end to end and that its JSON is complete
and holds only finite numbers, with accuracies and errors in [0, 1]. They do
not check which normalizer wins: that is what the full runs are for.
"""
import json
import math
import os

import pytest

from slimnorm.bench import exp_bn_speedup, exp_gn_batch_size
from slimnorm.bench import experiments as exp_common

PROBABILITY_KEYS = ('accuracy', 'error', 'target_accuracy')


def _numbers(value, path=''):
    """(path, number) of every number in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, path + '/' + str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, '%s[%d]' % (path, index))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def _check_numbers(record):
    checked = 0
    for path, number in _numbers(record):
        assert math.isfinite(number), path
        last_key = path.rsplit('/', 1)[-1].split('[')[0]
        if any(k in last_key for k in PROBABILITY_KEYS):
            assert 0.0 <= number <= 1.0, (path, number)
            checked += 1
    assert checked > 0


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _load(out_dir, stem):
    extensions = ('md', 'json', 'png') if _has_matplotlib() else ('md', 'json')
    for ext in extensions:
        assert os.path.getsize(os.path.join(out_dir, '%s.%s' % (stem, ext))) > 0
    with open(os.path.join(out_dir, stem + '.json')) as f:
        return json.load(f)


def test_bn_speedup_quick(tmp_path):
    exp_bn_speedup.main(['--quick', '--workers', '1', '--out_dir', str(tmp_path)])
    record = _load(tmp_path, 'exp_bn_speedup')
    _check_numbers(record)
    lrs = record['settings']['mlp_lrs']
    assert len(record['mlp']) == 2 * 2 * len(lrs)  # init x (BN, no BN) x lr
    for row in record['mlp'].values():
        assert len(row['mean_accuracy']) == len(row['steps']) > 1
        assert len(row['percentiles_seed0']) == len(row['steps'])
        for percentiles in row['percentiles_seed0']:
            assert percentiles is None or (len(percentiles) == 3 and
                                           percentiles[0] <= percentiles[1] <= percentiles[2])
    names = [r['name'] for r in record['conv']['rows']]
    assert names[0] == 'No BN (best lr)'
    assert {'BN-x5', 'BN-x30'} <= set(names)
    for row in record['conv']['rows']:
        for key in ('steps_to_target', 'steps_to_early_target'):
            assert row[key] is None or row[key] >= 0
    os.remove(os.path.join(tmp_path, 'exp_bn_speedup.png'))
    exp_bn_speedup.main(['--plot_only', '--out_dir', str(tmp_path)])
    assert os.path.exists(os.path.join(tmp_path, 'exp_bn_speedup.png')) == _has_matplotlib()


def test_gn_batch_size_quick(tmp_path):
    exp_gn_batch_size.main(['--quick', '--workers', '1', '--out_dir', str(tmp_path)])
    record = _load(tmp_path, 'exp_gn_batch_size')
    _check_numbers(record)
    cells = record['cells']
    for normalizer in exp_gn_batch_size.NORMALIZERS:
        for batch_size in record['batch_sizes']:
            cell = cells['%s|%d|%d' % (normalizer, record['default_groups'], batch_size)]
            assert len(cell['test_error_per_seed']) == record['seeds']
    for groups in record['groups']:
        assert '%s|%d|%d' % ('group', groups, record['reference_batch']) in cells


@pytest.mark.parametrize('accuracy, expected', [([0.1, 0.5, 0.9], 20), ([0.1, 0.2, 0.3], None)])
def test_steps_to_reach(accuracy, expected):
    assert exp_common.steps_to_reach([0, 10, 20], accuracy, 0.8) == expected


def test_finite_or_none_makes_json_safe():
    assert exp_common.finite_or_none({'a': [float('nan'), 1.0, float('inf')]}) == {
        'a': [None, 1.0, None]}


def test_renorm_warmup_smoke(tmp_path):
    """A 20-step run of every case writes its table, JSON and plot."""
    from slimnorm.bench import exp_renorm_warmup
    out = str(tmp_path / 'renorm')
    exp_renorm_warmup.main(['--steps', '20', '--seeds', '1', '--out', out])
    with open(out + '.json') as f:
        record = json.load(f)
    assert set(record['curves']) == set(exp_renorm_warmup.CASES)
    for curves in record['curves'].values():
        assert all(0.0 <= accuracy <= 1.0 for _, accuracy in curves['0'])
    assert os.path.exists(out + '.png') == _has_matplotlib()


def test_sync_bn_quick(tmp_path):
    """The four settings, one seed each, on 4 CPU devices of one session."""
    from slimnorm.bench import exp_sync_bn
    exp_sync_bn.main(['--quick', '--workers', '1', '--out_dir', str(tmp_path)])
    record = _load(tmp_path, 'exp_sync_bn')
    _check_numbers(record)
    assert set(record['cells']) == set(exp_sync_bn.SETTINGS)
    for name, cell in record['cells'].items():
        replicas, per_replica, _ = exp_sync_bn.SETTINGS[name]
        assert cell['steps'][-1] == record['examples_per_run'] // (replicas * per_replica)
        assert len(cell['test_error_per_seed']) == 1
