"""Batch-norm folding: the folded graph against the unfolded eval-mode graph."""
import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

import slimnorm
from slimnorm.export import fold, fold_patterns, freeze
from tests import export_helpers as helpers

tf1 = tf.compat.v1
BATCH_NORM_OPS = set(fold_patterns.FUSED_BATCH_NORM_OPS)
# NCHW graphs are run, not only inspected: oneDNN's CPU kernels take NCHW.
needs_nchw = pytest.mark.skipif(not helpers.nchw_runs_on_cpu(),
                                reason='no NCHW conv on this CPU build (oneDNN off)')


def _layouts():
    return ['NHWC', pytest.param('NCHW', marks=needs_nchw)]


def _fold_network(tmp_path, model_name, size, channels, steps=5, batch_size=8, **kwargs):
    """(checkpoint, frozen, FoldResult, eval-mode logits, folded logits)."""
    checkpoint = helpers.train_checkpoint(str(tmp_path), model_name, size, channels,
                                          steps=steps, batch_size=batch_size, **kwargs)
    graph = freeze.build_inference_graph(model_name, 10, image_size=size,
                                         num_channels=channels, **kwargs)
    frozen = freeze.restore_and_freeze(graph, checkpoint)
    result = fold.fold_batch_norms(frozen, freeze.OUTPUT_NAMES)
    inputs = helpers.images(3, size, channels, seed=99)
    expected = helpers.eval_logits(checkpoint, model_name, inputs, num_classes=10, **kwargs)
    folded = freeze.run_graph_def(result.graph_def, inputs)[0]
    return checkpoint, frozen, result, expected, folded


def _batch_norm_nodes(graph_def):
    """Fused batch norms, and the Rsqrt and Mul of tf.nn.batch_normalization
    (no other layer of these networks has either op)."""
    return [n.name for n in graph_def.node
            if n.op in BATCH_NORM_OPS or n.op in ('Rsqrt', 'Mul')]


@pytest.mark.parametrize('data_format', _layouts())
@pytest.mark.parametrize('normalizer', ['batch', 'batch_renorm'])
def test_small_convnet_fold_matches_eval_graph(tmp_path, data_format, normalizer):
    # fc_units adds a rank-2 batch norm after a MatMul; renorm's eval graph is
    # the moments path (x * A + B) rather than the fused kernel.
    _, frozen, result, expected, folded = _fold_network(
        tmp_path, 'small_convnet', 16, 1, data_format=data_format,
        normalizer=normalizer, fc_units=12)
    assert helpers.rel_err(folded, expected) < 1e-4
    assert np.max(np.abs(expected)) > 1.0  # the statistics moved: a real check
    assert len(result.folded) == 6 and result.affine == []
    assert _batch_norm_nodes(result.graph_def) == []
    assert _batch_norm_nodes(frozen)  # there were some to fold
    layers = {n.name: n.op for n in result.graph_def.node}
    assert sorted(layers[v] for v in result.folded.values()) == ['Conv2D'] * 5 + ['MatMul']
    bias_adds = [n for n in result.graph_def.node if n.op == 'BiasAdd'
                 and n.name.startswith('SmallConvNet/conv')]
    assert {n.attr['data_format'].s.decode() for n in bias_adds} == {data_format}


@needs_nchw
def test_nchw_fold_matches_nhwc_eval_graph(tmp_path):
    """Cross-layout: NCHW folded logits against the NHWC eval graph of the same weights."""
    checkpoint, _, _, _, folded = _fold_network(
        tmp_path, 'small_convnet', 16, 1, data_format='NCHW', fc_units=12)
    inputs = helpers.images(3, 16, 1, seed=99)
    nhwc = helpers.eval_logits(checkpoint, 'small_convnet', inputs, num_classes=10,
                               data_format='NHWC', fc_units=12)
    assert helpers.rel_err(folded, nhwc) < 1e-4


@pytest.mark.parametrize('data_format', _layouts())
def test_inception_v2_fold_matches_eval_graph(tmp_path, data_format):
    # A narrow Inception V2 (depth_multiplier 0.1) at 64x64 keeps this to
    # seconds; every one of its batch norms (68; 69 when the first layer is
    # a plain conv, as NCHW needs) follows a conv.
    kwargs = dict(depth_multiplier=0.1, batch_norm_scale=True, data_format=data_format,
                  use_separable_conv=data_format == 'NHWC')
    _, frozen, result, expected, folded = _fold_network(
        tmp_path, 'inception_v2', 64, 3, steps=2, batch_size=4, **kwargs)
    assert helpers.rel_err(folded, expected) < 1e-4
    assert len(result.folded) == (68 if data_format == 'NHWC' else 69)
    assert len(_batch_norm_nodes(frozen)) == len(result.folded) and result.affine == []
    assert _batch_norm_nodes(result.graph_def) == []


def _custom_graph(inputs):
    """Layers slim's nets do not have: separable conv + BN, depthwise conv + BN,
    conv with a bias + BN, a moments-path NCHW-free BN (fused=False), and a BN
    after a concat, which nothing can absorb."""
    with slim.arg_scope([slimnorm.batch_norm], is_training=False, scale=True,
                        param_initializers={
                            'gamma': tf1.random_uniform_initializer(0.5, 2.0),
                            'beta': tf1.random_uniform_initializer(-1.0, 1.0),
                            'moving_mean': tf1.random_uniform_initializer(-1.0, 1.0),
                            'moving_variance': tf1.random_uniform_initializer(0.5, 3.0)}):
        net = slim.separable_conv2d(inputs, 8, [3, 3], depth_multiplier=2,
                                    normalizer_fn=slimnorm.batch_norm, scope='sep')
        net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=2,
                                    normalizer_fn=slimnorm.batch_norm, scope='dw')
        net = slim.conv2d(net, 6, [1, 1], activation_fn=None, scope='conv_bias')
        net = slimnorm.batch_norm(net, fused=False, scope='conv_bias/BatchNorm')
        other = slim.conv2d(inputs, 4, [1, 1], normalizer_fn=slimnorm.batch_norm,
                            scope='other')
        net = tf.concat([net, other], axis=3)
        net = slimnorm.batch_norm(net, scope='after_concat')
    return tf.identity(net, name='out')


def _frozen_custom():
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(3)
        inputs = tf1.placeholder(tf.float32, [None, 8, 8, 3], name='input')
        _custom_graph(inputs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            frozen = freeze.freeze_session(sess, ['out'])
            expected = sess.run('out:0', {'input:0': helpers.images(2, 8, 3)})
    return frozen, expected


def test_every_layer_type_and_the_multiply_add_fallback():
    frozen, expected = _frozen_custom()
    result = fold.fold_batch_norms(frozen, ['out'])
    layers = {n.name: n.op for n in result.graph_def.node}
    kinds = {bn.split('/')[0]: layers[layer] for bn, layer in result.folded.items()}
    assert kinds == {'sep': 'Conv2D', 'dw': 'DepthwiseConv2dNative',
                     'conv_bias': 'Conv2D', 'other': 'Conv2D'}
    assert [bn.split('/')[0] for bn in result.affine] == ['after_concat']
    # the one Mul left is the multiply-add of the batch norm after the concat
    assert [n.split('/')[0] for n in _batch_norm_nodes(result.graph_def)] == ['after_concat']
    actual = freeze.run_graph_def(result.graph_def, helpers.images(2, 8, 3), ['out'])[0]
    assert helpers.rel_err(actual, expected) < 1e-4
    # the conv that had a bias keeps one BiasAdd: the shift went into its bias
    assert sum(n.op == 'BiasAdd' and n.name.startswith('conv_bias/')
               for n in result.graph_def.node) == 1


def test_the_callers_graph_def_and_session_graph_are_not_changed():
    frozen, _ = _frozen_custom()
    before = frozen.SerializeToString(deterministic=True)
    fold.fold_batch_norms(frozen, ['out'])
    assert frozen.SerializeToString(deterministic=True) == before
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf1.placeholder(tf.float32, [None, 8, 8, 3], name='input')
        _custom_graph(inputs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            graph_before = graph.as_graph_def().SerializeToString(deterministic=True)
            result = fold.fold_session(sess, ['out'])
            assert graph.as_graph_def().SerializeToString(deterministic=True) == graph_before
    assert len(result.folded) == 4


def test_unfrozen_graph_is_refused():
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf1.placeholder(tf.float32, [None, 8, 8, 3], name='input')
        _custom_graph(inputs)
    with pytest.raises(ValueError, match='needs a frozen GraphDef'):
        fold.fold_batch_norms(graph.as_graph_def(), ['out'])
    with pytest.raises(TypeError, match='graph_def must be'):
        fold.fold_batch_norms(graph, ['out'])


def test_benchmark_runs_both_graphs_and_they_agree():
    """One round of the benchmark's depthwise block (speed is not checked here)."""
    from slimnorm.bench import fold_bench
    result = fold_bench.measure_batch('block', 2, 12, rounds=1, calls_per_sample=1)
    assert result['folded_batch_norms'] == 2
    assert result['nodes']['folded'] < result['nodes']['unfolded']
    assert result['max_rel_err'] < 1e-4 and result['speedup'] > 0
    assert '| block, 2x12x12 | on |' in fold_bench.report([result])
