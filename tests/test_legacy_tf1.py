"""`python -m slimnorm.legacy --tf1_api`: TF 1 scripts with tensorflow.contrib imports, unedited.

tests/data/slim_tf1_api_script.py is written for TF 1's API (`import
tensorflow as tf`, `tf.app.flags`, `tf.logging`, `tf.gfile`, queues,
`from tensorflow.contrib import slim, quantize`, `tf.contrib.training.HParams`)
and never imports slimnorm.
"""
import copy
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from slimnorm.legacy import tf1_api
from slimnorm.legacy.hparams import HParams

from script_helpers import ROOT, script_env

SCRIPT = os.path.join(ROOT, 'tests', 'data', 'slim_tf1_api_script.py')
HAS_QUANTIZE = importlib.util.find_spec('slimnorm.quantize') is not None


def _legacy(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'slimnorm.legacy'] + [str(a) for a in args],
                          capture_output=True, text=True, env=script_env(), timeout=timeout,
                          cwd=ROOT)


def test_tf1_script_trains_unedited_through_tf1_api(tmp_path):
    result = _legacy('--tf1_api', SCRIPT, '--train_dir=%s' % tmp_path,
                     '--hparams=num_filters=4,learning_rate=0.2')
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['contrib_slim_is_tf_slim'] and report['has_placeholder']
    assert report['hparams'] == {'num_filters': 4, 'learning_rate': 0.2, 'batch_size': 16,
                                 'data_format': 'NHWC'}
    # Two classes at chance give ln 2 = 0.69; trained, the loss is well below.
    assert report['loss'] < 0.5
    reader = tf.compat.v1.train.NewCheckpointReader(tf.train.latest_checkpoint(str(tmp_path)))
    assert reader.get_variable_to_shape_map()['conv1/weights'] == [3, 3, 1, 4]
    assert reader.get_tensor('global_step') == 30


def test_without_tf1_api_the_same_script_fails_on_tf2s_namespace(tmp_path):
    result = _legacy(SCRIPT, '--train_dir=%s' % tmp_path, timeout=120)
    assert result.returncode != 0
    assert "has no attribute 'app'" in result.stderr


@pytest.mark.skipif(not HAS_QUANTIZE, reason='slimnorm.quantize is not in this branch '
                    '(the quantize work); the contrib stand-in delegates to it when merged')
def test_contrib_quantize_create_training_graph_runs(tmp_path):
    result = _legacy('--tf1_api', SCRIPT, '--train_dir=%s' % tmp_path, '--quantize_delay=10')
    assert result.returncode == 0, result.stderr[-3000:]
    reader = tf.compat.v1.train.NewCheckpointReader(tf.train.latest_checkpoint(str(tmp_path)))
    assert any('min' in name.lower() for name in reader.get_variable_to_shape_map())


@pytest.mark.skipif(HAS_QUANTIZE, reason='slimnorm.quantize is present')
def test_contrib_quantize_without_slimnorm_quantize_is_one_clear_line(tmp_path):
    result = _legacy('--tf1_api', SCRIPT, '--train_dir=%s' % tmp_path, '--quantize_delay=10',
                     timeout=120)
    assert result.returncode != 0
    assert ('QuantizeUnavailable: tensorflow.contrib.quantize.create_training_graph needs '
            'slimnorm.quantize, which this slimnorm does not have') in result.stderr


def test_only_the_users_files_get_the_tf1_view(tmp_path):
    library = tmp_path / 'venv' / 'lib' / 'site-packages'
    library.mkdir(parents=True)
    (library / 'installed_lib.py').write_text('import tensorflow as tf\nTF = tf\n')
    (tmp_path / 'user_module.py').write_text('import tensorflow as tf\nTF = tf\n')
    probe = tmp_path / 'probe.py'
    probe.write_text(
        'import sys\n'
        'sys.path[:0] = [%r, %r]\n'
        'import tensorflow as tf\n'
        'from tensorflow import logging\n'
        'import tensorflow.compat.v1 as v1\n'
        'import installed_lib, user_module, json, slimnorm.export.freeze as freeze\n'
        'print(json.dumps([tf.placeholder is v1.placeholder, logging is v1.logging,\n'
        '    user_module.TF is tf, hasattr(installed_lib.TF, "placeholder"),\n'
        '    freeze.tf is installed_lib.TF, installed_lib.TF is sys.modules["tensorflow"],\n'
        '    tf.contrib.training.HParams(a=1).a]))\n' % (str(library), str(tmp_path)))
    result = _legacy('--tf1_api', probe, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        True, True, True, False, True, True, 1]


def test_is_user_file():
    import sysconfig

    import slimnorm
    assert tf1_api.is_user_file(SCRIPT)
    assert not tf1_api.is_user_file(slimnorm.__file__)
    assert not tf1_api.is_user_file(json.__file__)  # the standard library
    assert not tf1_api.is_user_file(tf.__file__)
    assert not tf1_api.is_user_file('/usr/lib/python3/dist-packages/x.py')
    assert not tf1_api.is_user_file(os.path.join(sysconfig.get_paths()['purelib'], 'y.py'))
    assert not tf1_api.is_user_file(None)


def test_hparams_as_contrib():
    params = HParams(learning_rate=0.1, num_layers=4, data_format='NHWC', sizes=[1, 2],
                     use_aux=True)
    assert params.num_layers == 4 and 'sizes' in params and 'other' not in params
    params.set_hparam('learning_rate', 1)          # int into a float
    assert params.learning_rate == 1.0 and isinstance(params.learning_rate, float)
    with pytest.raises(ValueError, match='Could not cast'):
        params.set_hparam('num_layers', 2.5)       # a non-integral float into an int
    with pytest.raises(KeyError):
        params.set_hparam('nope', 1)
    with pytest.raises(ValueError, match='reserved'):
        params.add_hparam('num_layers', 5)
    params.add_hparam('dropout', 0.5)
    params.parse('num_layers=6,data_format=NCHW,sizes=[3,4,5],use_aux=false,dropout=0.25')
    assert params.values() == {'learning_rate': 1.0, 'num_layers': 6, 'data_format': 'NCHW',
                               'sizes': [3, 4, 5], 'use_aux': False, 'dropout': 0.25}
    with pytest.raises(ValueError, match='Unknown hyperparameter'):
        params.parse('depth=3')
    clone = copy.deepcopy(params)
    clone.set_hparam('num_layers', 1)
    assert params.num_layers == 6 and clone.num_layers == 1
    assert params.get('missing', 7) == 7
    params.del_hparam('dropout')
    assert 'dropout' not in params.values()
    with pytest.raises(ValueError, match='cannot be empty'):
        HParams(empty=[])
