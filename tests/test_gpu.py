"""GPU tests (`make test-gpu`): skipped, with the reason, where TensorFlow sees no GPU.

What runs on a machine with an NVIDIA GPU and the `gpu` extra
(tensorflow[and-cuda]):
- float16 training with dynamic loss scaling (`--mixed_precision float16`):
  the loss-scale variables exist, the run learns digits, its float32
  checkpoint evaluates in both precisions, convolutions run in float16;
- fused batch norm on the GPU, NCHW and NHWC, against the CPU's results
  (outputs, input gradients, moving statistics);
- group/layer/instance norm on the GPU (TensorFlow-ops path: the fused
  kernels are CPU-only) against the float64 references, with their step
  time printed beside fused batch norm's;
- two clones with synchronized batch norm when two GPUs are visible;
- the precision benchmark, float32 against float16.
``SLIMNORM_REQUIRE_GPU=1`` (set by `make test-gpu`) turns "no GPU" into a
failure, so the command cannot pass on a machine where nothing ran.
"""
import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm import precision, reference
from slimnorm.train.config import EvalConfig, TrainConfig

tf1 = tf.compat.v1
GPUS = tf.config.list_physical_devices('GPU')
REQUIRED = os.environ.get('SLIMNORM_REQUIRE_GPU') == '1'
needs_gpu = pytest.mark.skipif(not GPUS, reason='no GPU visible to TensorFlow '
                               f'(built with CUDA: {tf.test.is_built_with_cuda()})')


def test_a_gpu_is_there_when_required():
    if not REQUIRED:
        pytest.skip('SLIMNORM_REQUIRE_GPU is not 1 (make test-gpu sets it)')
    assert GPUS, ('SLIMNORM_REQUIRE_GPU=1 but TensorFlow sees no GPU (built with CUDA: '
                  f'{tf.test.is_built_with_cuda()}); install the gpu extra')


def _print(text):
    # Shown by pytest -s, and in the captured output of a failure otherwise.
    print(text, flush=True)


@needs_gpu
def test_float16_training_with_loss_scaling(tmp_path):
    from slimnorm.train import evaluation, loop
    config = TrainConfig(train_dir=str(tmp_path / 'run'), max_steps=300, log_every_steps=100,
                         mixed_precision='float16').check()
    result = loop.train(config, log=_print)
    reader = tf.train.load_checkpoint(result['checkpoint'])
    dtypes = reader.get_variable_to_dtype_map()
    assert any('loss_scale' in name for name in dtypes), sorted(dtypes)
    assert {d for n, d in dtypes.items() if 'moving_' in n} == {tf.float32}
    accuracy = {mp: evaluation.evaluate(EvalConfig(mixed_precision=mp).check(),
                                        config.train_dir)['top1'] for mp in ('none', 'float16')}
    assert min(accuracy.values()) > 0.9, accuracy
    assert abs(accuracy['none'] - accuracy['float16']) < 0.02, accuracy


@needs_gpu
def test_float16_rewrite_runs_convolutions_in_float16_on_the_gpu():
    with tf.Graph().as_default() as graph:
        images = tf.constant(np.random.default_rng(0).uniform(size=(8, 16, 16, 8)), tf.float32)
        net = slim.conv2d(images, 16, [3, 3], normalizer_fn=slimnorm.batch_norm,
                          normalizer_params={'is_training': True})
        loss = tf.reduce_mean(tf.square(net))
        optimizer = precision.loss_scale_optimizer(tf1.train.GradientDescentOptimizer(0.1),
                                                   'float16')
        train_op = slimnorm.training.create_train_op(loss, optimizer)
        init = tf1.global_variables_initializer()
    metadata = tf1.RunMetadata()
    with tf1.Session(graph=graph, config=precision.session_config('float16')) as sess:
        sess.run(init)
        sess.run(train_op, options=tf1.RunOptions(output_partition_graphs=True),
                 run_metadata=metadata)
    nodes = [n for part in metadata.partition_graphs for n in part.node]
    half = tf.float16.as_datatype_enum
    assert any(n.op == 'Conv2D' and n.attr['T'].type == half and 'GPU' in n.device
               for n in nodes)
    assert all(n.attr['U'].type == tf.float32.as_datatype_enum
               for n in nodes if n.op.startswith('FusedBatchNorm'))


def _batch_norm_run(x, device, data_format):
    """y (NHWC), dy/dx and the moving statistics after one update, on ``device``."""
    with tf.Graph().as_default() as graph, tf.device(device):
        inputs = tf.constant(x if data_format == 'NHWC' else x.transpose(0, 3, 1, 2))
        y = slimnorm.batch_norm(inputs, is_training=True, scale=True, decay=0.5,
                                data_format=data_format, updates_collections=None)
        dx = tf.gradients(tf.reduce_sum(y * y), inputs)[0]
        if data_format == 'NCHW':
            y, dx = tf.transpose(y, [0, 2, 3, 1]), tf.transpose(dx, [0, 2, 3, 1])
        stats = sorted((v for v in tf1.global_variables() if 'moving_' in v.op.name),
                       key=lambda v: v.op.name)
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        y_value, dx_value = sess.run([y, dx])
        return y_value, dx_value, sess.run(stats)


@needs_gpu
@pytest.mark.parametrize('data_format', ['NHWC', 'NCHW'])
def test_fused_batch_norm_on_the_gpu_matches_the_cpu(data_format):
    x = (2.0 + np.random.default_rng(0).normal(size=(16, 12, 12, 32))).astype(np.float32)
    cpu = _batch_norm_run(x, '/CPU:0', 'NHWC')
    gpu = _batch_norm_run(x, '/GPU:0', data_format)
    for name, want, got in zip(('y', 'dx'), cpu[:2], gpu[:2]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    for want, got in zip(cpu[2], gpu[2]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    y_ref, _, _ = reference.batch_norm_train(x)
    np.testing.assert_allclose(gpu[0], y_ref, rtol=1e-4, atol=1e-4)


def _step_time(build, x, rounds=20):
    with tf.Graph().as_default() as graph, tf.device('/GPU:0'):
        inputs = tf1.get_variable('x', initializer=x)
        y = build(inputs)
        step = tf.gradients(tf.reduce_sum(y * y), [inputs] + tf1.trainable_variables()[1:])
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        value = sess.run(y)
        for _ in range(3):
            sess.run(step)
        started = time.perf_counter()
        for _ in range(rounds):
            sess.run(step)
        return value, (time.perf_counter() - started) / rounds * 1e3


@needs_gpu
def test_group_layer_instance_norm_on_the_gpu_against_references_and_timed():
    x = np.random.default_rng(1).normal(size=(32, 28, 28, 64)).astype(np.float32)
    cases = {
        'fused batch norm': (lambda t: slimnorm.batch_norm(t, is_training=True), None),
        'group norm': (lambda t: slimnorm.group_norm(t, groups=32),
                       lambda: reference.group_norm(x, 32)),
        'layer norm': (lambda t: slimnorm.layer_norm(t), lambda: reference.layer_norm(x)),
        'instance norm': (lambda t: slimnorm.instance_norm(t),
                          lambda: reference.instance_norm(x)),
    }
    times = {}
    for name, (build, want) in cases.items():
        value, times[name] = _step_time(build, x)
        if want is not None:
            np.testing.assert_allclose(value, want(), rtol=1e-3, atol=1e-3, err_msg=name)
    base = times['fused batch norm']
    _print('GPU forward+backward, [32, 28, 28, 64] float32: ' + ', '.join(
        f'{name} {ms:.2f} ms ({ms / base:.2f}x fused BN)' for name, ms in times.items()))


@pytest.mark.skipif(len(GPUS) < 2, reason=f'{len(GPUS)} GPU(s) visible; clones with '
                    'synchronized batch norm need 2')
def test_two_gpu_clones_with_sync_batch_norm(tmp_path):
    from slimnorm.train import loop
    config = TrainConfig(train_dir=str(tmp_path / 'sync'), max_steps=50, log_every_steps=50,
                         num_clones=2, sync_batch_norm=True, batch_size=32).check()
    result = loop.train(config, log=_print)
    assert result['global_step'] == 50 and np.isfinite(result['loss'])


@needs_gpu
def test_precision_benchmark_float16(tmp_path, capsys):
    from slimnorm.bench import precision as bench
    assert bench.main(['--low_precision', 'float16', '--batches', '32', '--rounds', '3',
                       '--out_dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        _print(out)
    (folder,) = os.listdir(tmp_path)
    with open(tmp_path / folder / 'precision.json') as f:
        cases = json.load(f)['cases']
    capability = tf.config.experimental.get_device_details(GPUS[0]).get('compute_capability')
    if capability and capability >= (7, 0):
        # Tensor cores: float16 must not make Inception V2's batch-32 step slower.
        step = [c for c in cases if c['model'] == 'inception_v2' and c['mode'] == 'train'
                and c['normalizer'] == 'batch']
        assert step and step[0]['speedup'] >= 1.0, step
