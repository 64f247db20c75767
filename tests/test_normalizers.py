"""nets.normalizers: the normalizer switch and its group-norm adapter."""

import numpy as np
import pytest
import tensorflow as tf

import slimnorm
from nets import normalizers

tf1 = tf.compat.v1


@pytest.mark.parametrize('name, data_format, fn, params', [
    ('batch', 'NCHW', lambda: slimnorm.batch_norm,
     {'decay': 0.9, 'data_format': 'NCHW'}),
    ('group', 'NCHW', lambda: normalizers.group_norm,
     {'data_format': 'NCHW'}),
    ('instance', 'NCHW', lambda: slimnorm.instance_norm,
     {'data_format': 'NCHW'}),
    ('layer', 'NHWC', lambda: slimnorm.layer_norm, {}),
    (None, 'NCHW', lambda: None, {}),
    ('none', 'NHWC', lambda: None, {}),
])
def test_switch_table(name, data_format, fn, params):
    # The batch-norm defaults reach batch norm only.
    got_fn, got_params = normalizers.normalizer_fn_and_params(
        name, data_format, batch_norm_params={'decay': 0.9})
    assert got_fn is fn()
    assert got_params == params


def test_normalizer_params_override_defaults():
    _, params = normalizers.normalizer_fn_and_params(
        'batch', 'NHWC', {'decay': 0.9, 'scale': False},
        {'scale': True, 'data_format': 'NHWC'})
    assert params == {'decay': 0.9, 'scale': True, 'data_format': 'NHWC'}


@pytest.mark.parametrize('args, message', [
    (('bn',), r"(?=.*normalizer)(?=.*'bn')(?=.*'batch')(?=.*'none')"),
    (('group', 'HWCN'), r"(?=.*data_format)(?=.*'HWCN')(?=.*NHWC)"),
    (('layer', 'NCHW'), "normalizer='layer' needs data_format='NHWC'"),
])
def test_errors(args, message):
    with pytest.raises(ValueError, match=message):
        normalizers.normalizer_fn_and_params(*args)


def _group_stats(out, groups, channel_axis):
    """Mean and variance of each (example, group) of a numpy output."""
    out = np.moveaxis(out, channel_axis, -1)
    out = out.reshape(out.shape[0], -1, groups, out.shape[-1] // groups)
    return out.mean(axis=(1, 3)), out.var(axis=(1, 3))


def test_group_norm_on_each_layout_and_rank():
    rng = np.random.RandomState(0)
    nhwc = rng.normal(3.0, 2.0, (2, 5, 6, 8)).astype(np.float32)
    dense = rng.normal(3.0, 2.0, (4, 64)).astype(np.float32)
    with tf.Graph().as_default():
        # 8 channels: the default 32 groups are capped to 8 (one a channel).
        a = normalizers.group_norm(tf.constant(nhwc), scope='a')
        b = normalizers.group_norm(
            tf.constant(nhwc.transpose(0, 3, 1, 2)), groups=4,
            data_format='NCHW', scope='b')
        c = normalizers.group_norm(tf.constant(dense), groups=16, scope='c')
        gamma_shapes = [v.shape.as_list() for v in tf1.global_variables()
                        if v.op.name.endswith('gamma')]
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            a, b, c = sess.run([a, b, c])
    assert gamma_shapes == [[8], [8], [64]]
    for out, groups, axis in [(a, 8, -1), (b, 4, 1), (c, 16, -1)]:
        mean, var = _group_stats(out, groups, axis)
        np.testing.assert_allclose(mean, 0.0, atol=1e-4)
        np.testing.assert_allclose(var, 1.0, atol=1e-3)


def test_group_norm_refuses_other_ranks():
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match='rank 3'):
            normalizers.group_norm(tf1.placeholder(tf.float32, [2, 4, 8]))


@pytest.mark.parametrize('step, rmax, dmax', [
    (0, 1.0, 0.0), (5000, 1.0, 0.0), (15000, 1 + 2 * 10 / 35, 2.5), (25000, 1 + 2 * 20 / 35, 5.0),
    (40000, 3.0, 5.0), (90000, 3.0, 5.0)])
def test_batch_renorm_switch_follows_the_papers_warm_up(step, rmax, dmax):
    """Ioffe 2017: BN for 5k steps, rmax 1 -> 3 at 40k, dmax 0 -> 5 at 25k."""
    with tf.Graph().as_default():
        fn, params = normalizers.normalizer_fn_and_params('batch_renorm', 'NHWC')
        assert fn is slimnorm.batch_norm and params['renorm'] is True
        global_step = tf1.train.get_global_step()
        with tf1.Session() as sess:
            sess.run(global_step.assign(step))
            got = sess.run(params['renorm_clipping'])
    np.testing.assert_allclose([got['rmax'], got['rmin'], got['dmax']], [rmax, 1 / rmax, dmax],
                               rtol=1e-6, atol=1e-6)


def test_renorm_schedule_scales_to_a_run():
    with tf.Graph().as_default():
        _, params = normalizers.normalizer_fn_and_params(
            'batch_renorm', normalizer_params={'renorm_schedule': {
                'warmup_steps': 30, 'dmax_steps': 150, 'rmax_steps': 240}})
        assert 'renorm_schedule' not in params
        with tf1.Session() as sess:
            sess.run(tf1.train.get_global_step().assign(90))
            got = sess.run(params['renorm_clipping'])
    np.testing.assert_allclose([got['rmax'], got['dmax']], [1 + 2 * 60 / 210, 5 * 60 / 120],
                               rtol=1e-6)
