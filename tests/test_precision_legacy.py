"""`python -m slimnorm.legacy --mixed_precision ...`: tf-slim's Sessions get the rewrite."""
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import tf_slim as slim
from tensorflow.core.protobuf import rewriter_config_pb2

from slimnorm import precision
from slimnorm.legacy import mixed_precision as legacy_precision
from slimnorm.legacy import runner

from script_helpers import ROOT, script_env

tf1 = tf.compat.v1
ON = rewriter_config_pb2.RewriterConfig.ON
NO_BF16 = precision.unavailable_reason('bfloat16')
needs_bf16 = pytest.mark.skipif(NO_BF16 is not None, reason=f'bfloat16: {NO_BF16}')


@pytest.fixture
def restore_tf_slim(monkeypatch):
    # apply() replaces attributes of tf-slim's modules: put them back afterwards.
    import tf_slim.evaluation
    import tf_slim.learning
    for module, names in ((tf_slim.learning, ('train', 'create_train_op')),
                          (tf_slim.evaluation, ('evaluate_once', 'evaluation_loop'))):
        for name in names:
            monkeypatch.setattr(module, name, getattr(module, name))


def test_options_are_parsed_before_the_script():
    assert runner.parse_options(['--mixed_precision', 'none', 'x.py', '--a']) == (
        False, 'none', ['x.py', '--a'])
    assert runner.parse_options(['x.py', '--mixed_precision', 'bogus']) == (
        False, 'none', ['x.py', '--mixed_precision', 'bogus'])  # the script's own flag
    assert runner.parse_options(['--tf1_api', '--mixed_precision=none', 'x.py']) == (
        True, 'none', ['x.py'])  # the runner's options in any order
    with pytest.raises(ValueError, match="mixed_precision='half'"):
        runner.parse_options(['--mixed_precision=half', 'x.py'])


def test_bad_value_exits_2_with_one_line():
    result = subprocess.run([sys.executable, '-m', 'slimnorm.legacy', '--mixed_precision',
                             'half', 'x.py'], capture_output=True, text=True, env=script_env(),
                            timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].endswith(
        ": error: mixed_precision='half'; accepted: none, bfloat16, float16")


PROBE = """
import sys
import numpy as np, tensorflow as tf, tf_slim as slim, slimnorm
tf1 = tf.compat.v1
sessions = []
images = tf.constant(np.random.default_rng(0).uniform(size=(8, 8, 8, 3)), tf.float32)
net = slim.conv2d(images, 4, [3, 3], normalizer_fn=slim.batch_norm,
                  normalizer_params={'is_training': True})
loss = tf.reduce_mean(tf.square(net))
train_op = slim.learning.create_train_op(loss, tf1.train.GradientDescentOptimizer(0.1))
given = tf1.ConfigProto(intra_op_parallelism_threads=1)
final = slim.learning.train(train_op, sys.argv[1], number_of_steps=2, session_config=given,
                            save_summaries_secs=0,
                            session_wrapper=lambda s: sessions.append(s) or s)
config = sessions[0]._config  # the ConfigProto the Session was opened with
rewrites = config.graph_options.rewrite_options
print(int(rewrites.auto_mixed_precision_onednn_bfloat16), config.intra_op_parallelism_threads,
      int(given.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16),
      bool(np.isfinite(final)))
"""


@needs_bf16
def test_slim_learning_train_session_gets_the_bfloat16_rewrite(tmp_path):
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    result = subprocess.run([sys.executable, '-m', 'slimnorm.legacy', '--mixed_precision',
                             'bfloat16', str(script), str(tmp_path / 'train')],
                            capture_output=True, text=True, env=script_env(), timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    # Rewrite ON in the Session's config, the script's own setting kept, its
    # ConfigProto object itself not modified, the steps ran.
    assert result.stdout.split()[-4:] == [str(ON), '1', '0', 'True']


def test_apply_wraps_once():
    import importlib
    learning = importlib.import_module('tf_slim.learning')
    original = learning.train
    try:
        if NO_BF16 is None:
            assert legacy_precision.apply('bfloat16') == [
                'tf_slim.learning.train', 'tf_slim.evaluation.evaluate_once',
                'tf_slim.evaluation.evaluation_loop']
            legacy_precision.apply('bfloat16')
            assert learning.train.__wrapped__ is original
        assert legacy_precision.apply('none') == []
    finally:
        learning.train = original
        evaluation = importlib.import_module('tf_slim.evaluation')
        for name in ('evaluate_once', 'evaluation_loop'):
            function = getattr(evaluation, name)
            setattr(evaluation, name, getattr(function, '__wrapped__', function))


def test_float16_wraps_slims_create_train_op_with_loss_scaling(restore_tf_slim):
    if precision.unavailable_reason('float16') is None:
        legacy_precision.apply('float16')
    else:  # no GPU: wrap directly (apply() refuses float16 here)
        slim.learning.create_train_op = legacy_precision._with_loss_scaling(
            slim.learning.create_train_op, 'float16')
    with tf.Graph().as_default():
        weights = tf1.get_variable('w', [3], initializer=tf1.ones_initializer())
        loss = tf.reduce_sum(tf.square(weights))
        slim.learning.create_train_op(loss, tf1.train.GradientDescentOptimizer(0.1))
        names = [v.op.name for v in tf1.global_variables()]
    assert any('loss_scale' in name for name in names), names


@needs_bf16
def test_research_slim_shaped_script_trains_and_evaluates_in_bfloat16(tmp_path):
    script = os.path.join(ROOT, 'tests', 'data', 'slim_legacy_classifier.py')
    result = subprocess.run(
        [sys.executable, '-m', 'slimnorm.legacy', '--mixed_precision', 'bfloat16', script,
         f'--dataset_dir={tmp_path / "data"}', f'--train_dir={tmp_path / "train"}',
         '--max_number_of_steps=60'],
        capture_output=True, text=True, env=script_env(), timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])['accuracy'] >= 0.9
