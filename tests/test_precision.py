"""slimnorm.precision: the machine check, the session config, loss scaling, what runs in 16 bits."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

import slimnorm
from slimnorm import precision, reference
from slimnorm.cli import train as train_cli
from slimnorm.train.config import TrainConfig

tf1 = tf.compat.v1
NO_BF16 = precision.unavailable_reason('bfloat16')
needs_bf16 = pytest.mark.skipif(NO_BF16 is not None, reason=f'bfloat16: {NO_BF16}')
BF16_EPS = 2.0 ** -8  # bfloat16 keeps 8 significant bits: relative rounding <= 2**-8


def _cpuinfo(tmp_path, flags):
    path = tmp_path / f'cpuinfo_{len(list(tmp_path.iterdir()))}'
    path.write_text(f'processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 {flags}\n')
    return str(path)


def test_check_reads_the_cpu_flags(tmp_path):
    with_bf16 = _cpuinfo(tmp_path, 'avx512f avx512_bf16')
    assert precision.check('bfloat16', path=with_bf16) == 'bfloat16'
    assert precision.check('none', path=with_bf16) == 'none'
    without = _cpuinfo(tmp_path, 'avx2 avx512f')
    with pytest.raises(ValueError) as err:
        precision.check('bfloat16', path=without)
    message = str(err.value)
    assert '\n' not in message
    assert "mixed_precision='bfloat16'" in message and 'Test CPU' in message
    assert 'avx512_bf16 or amx_bf16' in message and 'accepted: none' in message
    assert precision.machine(with_bf16)['cpu_flags']['avx512_bf16'] is True
    assert precision.machine(without)['bf16_instructions'] is False


def test_unknown_precision_and_downgrade(tmp_path):
    with pytest.raises(ValueError, match=r"mixed_precision='fp8'; accepted: none, bfloat16, "
                                         r"float16"):
        precision.check('fp8')
    lines = []
    assert precision.downgrade('bfloat16', lines.append, _cpuinfo(tmp_path, 'avx2')) == 'none'
    assert len(lines) == 1 and 'running in float32' in lines[0]
    assert precision.downgrade('bfloat16', lines.append,
                               _cpuinfo(tmp_path, 'amx_bf16')) == 'bfloat16'


@pytest.mark.skipif(precision.nvidia_gpu_visible(), reason='a GPU is visible')
def test_float16_is_refused_without_a_gpu(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(['--mixed_precision', 'float16'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'no NVIDIA GPU is visible' in err


def test_flag_is_checked_before_tensorflow_loads():
    import subprocess
    code = ('import sys; from slimnorm.cli import train\n'
            'try: train.main(["--mixed_precision", "half"])\n'
            'except SystemExit as e: print(e.code, "tensorflow" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert out.stdout.split() == ['2', 'False']
    assert "mixed_precision='half'" in out.stderr


def test_session_config_sets_the_rewrite_and_keeps_the_rest():
    base = tf1.ConfigProto(intra_op_parallelism_threads=3)
    from tensorflow.core.protobuf import rewriter_config_pb2
    on = rewriter_config_pb2.RewriterConfig.ON
    bf16 = precision.session_config('bfloat16', base)
    assert bf16.intra_op_parallelism_threads == 3
    assert bf16.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == on
    assert base.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 != on
    fp16 = precision.session_config('float16')
    assert fp16.graph_options.rewrite_options.auto_mixed_precision == on
    cpu16 = precision.session_config('float16', float16_on_cpu=True)
    assert cpu16.graph_options.rewrite_options.auto_mixed_precision_cpu == on
    assert precision.session_config('none', base) == base
    listed = os.environ[precision.INFERLIST_ENV].split(',')
    assert set(precision.KERNEL_OPS) <= set(listed)
    precision.register_kernels()
    assert os.environ[precision.INFERLIST_ENV].split(',') == listed  # idempotent


def _run_traced(graph, fetches, config, feed=None, init=True):
    """Runs ``fetches``; returns (values, {node name: NodeDef}) of the graph that really ran."""
    options = tf1.RunOptions(output_partition_graphs=True)
    metadata = tf1.RunMetadata()
    with tf1.Session(graph=graph, config=config) as sess:
        if init:
            sess.run(tf1.global_variables_initializer())
        values = sess.run(fetches, feed, options=options, run_metadata=metadata)
    nodes = {node.name: node for part in metadata.partition_graphs for node in part.node}
    return values, nodes


def _type(node, attr='T'):
    """The dtype attribute ``attr`` of a NodeDef (None when it has none)."""
    value = node.attr[attr].type if attr in node.attr else 0
    return tf.dtypes.as_dtype(value) if value else None


def _base_op(op):
    for prefix in ('_MklNative', '_Mkl', '_'):
        if op.startswith(prefix):
            return op[len(prefix):]
    return op


def _train_graph(normalizer, optimizer_wrap=lambda opt: opt):
    from nets import nets_factory
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        rng = np.random.default_rng(0)
        images = tf.constant(rng.uniform(size=(16, 8, 8, 1)), tf.float32)
        labels = tf.constant(rng.integers(0, 10, 16), tf.int64)
        network = nets_factory.get_network_fn('small_convnet', 10, is_training=True,
                                              normalizer=normalizer)
        logits, _ = network(images)
        loss = tf1.losses.sparse_softmax_cross_entropy(labels, logits)
        optimizer = optimizer_wrap(tf1.train.MomentumOptimizer(0.05, 0.9))
        train_op = slimnorm.training.create_train_op(loss, optimizer)
    return graph, train_op, optimizer


@needs_bf16
def test_bfloat16_rewrite_runs_convolutions_and_fused_batch_norm_in_bfloat16():
    graph, train_op, _ = _train_graph('batch')
    with graph.as_default():
        moving = [v for v in tf1.global_variables() if 'moving_' in v.op.name]
    _, nodes = _run_traced(graph, train_op, precision.session_config('bfloat16'))
    types = {}
    for node in nodes.values():
        if _type(node) is not None:
            types.setdefault(_base_op(node.op), set()).add(_type(node))
    # oneDNN's names: _MklNativeConv2D, _MklNativeFusedBatchNormEx (batch norm
    # fused with the ReLU), ...
    assert types['FusedBatchNormEx'] | types.get('FusedBatchNormV3', set()) == {tf.bfloat16}
    assert types['FusedBatchNormGradV3'] == {tf.bfloat16}
    for op in ('Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput'):
        assert types[op] == {tf.bfloat16}, op
    # Statistics in float32: the kernels' U attribute; variables float32.
    assert {_type(n, 'U') for n in nodes.values() if 'FusedBatchNorm' in n.op} == {tf.float32}
    assert {v.dtype.base_dtype for v in moving} == {tf.float32}
    assert not any(n.op.startswith('VarHandleOp') and _type(n, 'dtype') != tf.float32
                   and 'global_step' not in n.name for n in nodes.values())


@needs_bf16
def test_group_norm_kernel_stays_in_bfloat16_between_convolutions():
    available, why = slimnorm.kernels_available()
    if not available:
        pytest.skip(f'no fused kernels: {why}')
    graph, train_op, _ = _train_graph('group')
    _, nodes = _run_traced(graph, train_op, precision.session_config('bfloat16'))
    kernel_types = {node.op: _type(node) for node in nodes.values()
                    if node.op in precision.KERNEL_OPS}
    assert kernel_types == {'SlimnormGroupNorm': tf.bfloat16,
                            'SlimnormGroupNormGrad': tf.bfloat16}


@needs_bf16
def test_batch_norm_on_bfloat16_inputs_matches_the_float64_reference():
    # The fused kernel on bfloat16 inputs: statistics in float32 (outputs of
    # the kernel), normalized values rounded to bfloat16. Tolerance: the
    # output's rounding, 2**-8 relative, plus 2**-8 absolute for the float32
    # statistics of values that are themselves rounded (|y| up to ~4).
    rng = np.random.default_rng(1)
    x = (3.0 + 2.0 * rng.normal(size=(8, 6, 6, 16))).astype(tf.bfloat16.as_numpy_dtype)
    with tf.Graph().as_default() as graph:
        inputs = tf.constant(x)
        y = slimnorm.batch_norm(inputs, is_training=True, scale=True, updates_collections=None,
                                decay=0.0)
        mean, var = [v for v in tf1.global_variables() if 'moving_' in v.op.name]
    with tf1.Session(graph=graph) as sess:
        sess.run(tf1.global_variables_initializer())
        y_value = sess.run(y)  # the update runs with y (updates_collections=None)
        mean_value, var_value = sess.run([mean, var])
    assert y.dtype == tf.bfloat16 and mean.dtype.base_dtype == tf.float32
    x64 = x.astype(np.float64)
    want, want_mean, want_var = reference.batch_norm_train(x64, epsilon=1e-3)
    got = y_value.astype(np.float64)
    assert np.all(np.abs(got - want) <= BF16_EPS * np.abs(want) + BF16_EPS)
    # With decay 0 the moving statistics are this batch's, in float32 (slim's
    # fused path stores the unbiased variance).
    np.testing.assert_allclose(mean_value, want_mean, rtol=1e-5)
    n = x64.size // x64.shape[-1]
    np.testing.assert_allclose(var_value, want_var * n / (n - 1), rtol=1e-4)


def test_float16_graph_has_loss_scaling_and_float32_statistics():
    # No GPU here: TensorFlow's CPU float16 emulation (auto_mixed_precision_cpu)
    # runs the same float16 graph rewrite, so the step, the loss scale and the
    # statistics' types are checked as far as a CPU allows.
    wrap = lambda opt: precision.loss_scale_optimizer(opt, 'float16')  # noqa: E731
    graph, train_op, optimizer = _train_graph('batch', wrap)
    assert isinstance(optimizer, tf1.mixed_precision.MixedPrecisionLossScaleOptimizer)
    assert precision.loss_scale_optimizer(optimizer, 'float16') is optimizer
    assert precision.loss_scale_optimizer(optimizer._optimizer, 'bfloat16') is \
        optimizer._optimizer
    with graph.as_default():
        scale = precision.loss_scale(optimizer)
        moving = [v for v in tf1.global_variables() if 'moving_mean' in v.op.name]
        assert {v.dtype.base_dtype for v in tf1.global_variables()} <= {tf.float32, tf.int64}
        before = tf.identity(moving[0].read_value())
    config = precision.session_config('float16', float16_on_cpu=True)
    with tf1.Session(graph=graph, config=config) as sess:
        sess.run(tf1.global_variables_initializer())
        start = sess.run(before)
        options = tf1.RunOptions(output_partition_graphs=True)
        metadata = tf1.RunMetadata()
        losses = [sess.run(train_op, options=options, run_metadata=metadata) for _ in range(3)]
        assert np.all(np.isfinite(losses))
        assert sess.run(scale) == 2.0 ** 15  # dynamic: starts at 2**15, no overflow yet
        assert not np.allclose(sess.run(before), start)  # the statistics moved
    nodes = [n for part in metadata.partition_graphs for n in part.node]
    fused = [n for n in nodes if 'FusedBatchNorm' in n.op]
    assert fused and {_type(n, 'U') for n in fused} == {tf.float32}
    # The CPU emulation keeps the ops' types float32 and rounds their inputs
    # and outputs through float16 (casts to half and back): the rewrite ran.
    assert any(n.op == 'Cast' and _type(n, 'DstT') == tf.float16 for n in nodes)


def test_loss_scale_argument_is_checked():
    with tf.Graph().as_default():
        opt = tf1.train.GradientDescentOptimizer(0.1)
        fixed = precision.loss_scale_optimizer(opt, 'float16', loss_scale=128)
        assert float(tf1.Session().run(precision.loss_scale(fixed))) == 128.0
        with pytest.raises(ValueError, match='loss_scale=-1'):
            precision.loss_scale_optimizer(opt, 'float16', loss_scale=-1)
    assert precision.loss_scale(opt) is None


def _evaluate(train_dir, mixed_precision):
    from slimnorm.train import evaluation
    from slimnorm.train.config import EvalConfig
    config = EvalConfig(mixed_precision=mixed_precision).check()
    return evaluation.evaluate(config, train_dir)['top1']


@needs_bf16
@pytest.mark.parametrize('trained_in', ['bfloat16', 'none'])
def test_checkpoints_interchange_between_precisions(tmp_path, trained_in):
    from slimnorm.train import loop
    config = TrainConfig(train_dir=str(tmp_path / 'run'), max_steps=150, log_every_steps=150,
                         mixed_precision=trained_in).check()
    result = loop.train(config, log=lambda line: None)
    reader = tf.train.load_checkpoint(result['checkpoint'])
    dtypes = reader.get_variable_to_dtype_map()
    assert {d for name, d in dtypes.items() if name != 'global_step'} == {tf.float32}
    accuracy = {mp: _evaluate(config.train_dir, mp) for mp in ('none', 'bfloat16')}
    assert min(accuracy.values()) > 0.85, accuracy
    # The same weights in either precision: bfloat16 rounding moves few predictions.
    assert abs(accuracy['none'] - accuracy['bfloat16']) < 0.02, accuracy
