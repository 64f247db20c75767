"""Caffe BatchNorm+Scale import, from .caffemodel files this test writes.

The files are encoded by the `protobuf` package (which TensorFlow depends
on) from message definitions declared here with caffe.proto's field numbers,
so the hand-written decoder of slimnorm.export.caffe is checked against an
independent encoder, in both the packed (Caffe's) and unpacked encodings of
repeated floats. The imported values are then checked numerically: slim's
eval-mode batch norm, restored from the written checkpoint, against Caffe's
formula in numpy.
"""
import json

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import slimnorm
from slimnorm.export import caffe, checkpoint_io, cli

tf1 = tf.compat.v1
F = descriptor_pb2.FieldDescriptorProto


def _messages(packed):
    """Message classes for the subset of caffe.proto a BN model needs."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name='caffe_subset_%s.proto' % packed, package='caffe_test_%s' % packed,
        syntax='proto2')

    def message(name, *specs):
        msg = file_proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name, is_packed in specs:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = '.%s.%s' % (file_proto.package, type_name)
            if is_packed:
                field.options.packed = True
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message('BlobShape', ('dim', 1, F.TYPE_INT64, rep, None, True))
    message('BlobProto', ('shape', 7, F.TYPE_MESSAGE, opt, 'BlobShape', False),
            ('data', 5, F.TYPE_FLOAT, rep, None, packed),
            ('num', 1, F.TYPE_INT64, opt, None, False),
            ('channels', 2, F.TYPE_INT64, opt, None, False),
            ('height', 3, F.TYPE_INT64, opt, None, False),
            ('width', 4, F.TYPE_INT64, opt, None, False))
    message('BatchNormParameter', ('use_global_stats', 1, F.TYPE_BOOL, opt, None, False),
            ('moving_average_fraction', 2, F.TYPE_FLOAT, opt, None, False),
            ('eps', 3, F.TYPE_FLOAT, opt, None, False))
    message('ScaleParameter', ('axis', 1, F.TYPE_INT64, opt, None, False),
            ('bias_term', 4, F.TYPE_BOOL, opt, None, False))
    message('LayerParameter', ('name', 1, F.TYPE_STRING, opt, None, False),
            ('type', 2, F.TYPE_STRING, opt, None, False),
            ('bottom', 3, F.TYPE_STRING, rep, None, False),
            ('top', 4, F.TYPE_STRING, rep, None, False),
            ('blobs', 7, F.TYPE_MESSAGE, rep, 'BlobProto', False),
            ('batch_norm_param', 139, F.TYPE_MESSAGE, opt, 'BatchNormParameter', False),
            ('scale_param', 142, F.TYPE_MESSAGE, opt, 'ScaleParameter', False))
    message('NetParameter', ('name', 1, F.TYPE_STRING, opt, None, False),
            ('layer', 100, F.TYPE_MESSAGE, rep, 'LayerParameter', False))
    return message_factory.GetMessages([file_proto], pool=descriptor_pool.DescriptorPool())


def _blob(layer, values, legacy_shape=False):
    blob = layer.blobs.add()
    values = np.asarray(values, np.float32)
    blob.data.extend(values.reshape(-1).tolist())
    if legacy_shape:
        blob.num, blob.channels, blob.height, blob.width = 1, values.size, 1, 1
    else:
        blob.shape.dim.extend(values.shape)


def _model(packed, rng):
    """conv1 -> bn1 (in place) -> scale1; conv2 -> bn2 (factor 0, no Scale)."""
    classes = _messages(packed)
    net = classes['caffe_test_%s.NetParameter' % packed](name='tiny')
    conv = net.layer.add(name='conv1', type='Convolution', bottom=['data'], top=['conv1'])
    _blob(conv, rng.randn(4, 3, 3, 3))
    expected = {'mean_sum': rng.randn(4) * 30, 'var_sum': rng.uniform(1, 3, 4) * 30,
                'factor': 30.0, 'gamma': rng.uniform(0.5, 2, 4), 'beta': rng.randn(4)}
    bn = net.layer.add(name='bn1', type='BatchNorm', bottom=['conv1'], top=['conv1'])
    bn.batch_norm_param.use_global_stats = True
    bn.batch_norm_param.eps = 1e-3
    _blob(bn, expected['mean_sum'])
    _blob(bn, expected['var_sum'])
    _blob(bn, [expected['factor']], legacy_shape=True)
    scale = net.layer.add(name='scale1', type='Scale', bottom=['conv1'], top=['conv1'])
    scale.scale_param.bias_term = True
    _blob(scale, expected['gamma'])
    _blob(scale, expected['beta'])
    net.layer.add(name='relu1', type='ReLU', bottom=['conv1'], top=['conv1'])
    bn2 = net.layer.add(name='bn2', type='BatchNorm', bottom=['conv2'], top=['conv2_bn'])
    for values in (np.ones(2), np.ones(2), [0.0]):
        _blob(bn2, values)
    return net.SerializeToString(), expected


@pytest.mark.parametrize('packed', [True, False])
def test_decoder_reads_what_protobuf_wrote(packed):
    data, expected = _model(packed, np.random.RandomState(0))
    layers = caffe.read_caffemodel(data)
    assert [(layer.name, layer.type) for layer in layers] == [
        ('conv1', 'Convolution'), ('bn1', 'BatchNorm'), ('scale1', 'Scale'),
        ('relu1', 'ReLU'), ('bn2', 'BatchNorm')]
    assert layers[0].blobs[0].shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(layers[1].blobs[0],
                                  expected['mean_sum'].astype(np.float32))
    assert layers[1].blobs[2].shape == (1, 1, 1, 1)  # legacy 4-D shape
    values, info = caffe.batch_norm_variables(layers, {'bn1': 'Net/conv1', 'bn2': 'Net/conv2'})
    np.testing.assert_allclose(values['Net/conv1/BatchNorm/moving_mean'],
                               expected['mean_sum'] / 30.0, rtol=1e-6)
    np.testing.assert_allclose(values['Net/conv1/BatchNorm/moving_variance'],
                               expected['var_sum'] / 30.0, rtol=1e-6)
    np.testing.assert_allclose(values['Net/conv1/BatchNorm/gamma'], expected['gamma'], rtol=1e-6)
    np.testing.assert_allclose(values['Net/conv1/BatchNorm/beta'], expected['beta'], rtol=1e-6)
    # a scale factor of 0 gives 0 statistics, as in Caffe; no Scale, no gamma/beta
    np.testing.assert_array_equal(values['Net/conv2/BatchNorm/moving_mean'], [0, 0])
    assert 'Net/conv2/BatchNorm/gamma' not in values
    assert info['bn1'] == {'eps': pytest.approx(1e-3), 'decay': pytest.approx(0.999),
                           'use_global_stats': True, 'scale': 'scale1'}
    assert info['bn2']['eps'] == pytest.approx(1e-5) and info['bn2']['use_global_stats'] is None


def test_imported_batch_norm_normalizes_as_caffe(tmp_path):
    data, expected = _model(True, np.random.RandomState(1))
    path = tmp_path / 'tiny.caffemodel'
    path.write_bytes(data)
    prefix, info = caffe.caffe_to_checkpoint(str(path), {'bn1': 'Net/conv1'},
                                             str(tmp_path / 'ckpt' / 'model.ckpt'))
    x = np.random.RandomState(2).randn(2, 5, 5, 4).astype(np.float32) * 3 + 1
    with tf.Graph().as_default():
        with tf1.variable_scope('Net/conv1'):
            y = slimnorm.batch_norm(tf.constant(x), scale=True, is_training=False,
                                    epsilon=info['bn1']['eps'])
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, prefix)
            actual = sess.run(y)
    mean = expected['mean_sum'] / expected['factor']
    variance = expected['var_sum'] / expected['factor']
    caffe_y = (expected['gamma'] * (x - mean) / np.sqrt(variance + 1e-3) + expected['beta'])
    np.testing.assert_allclose(actual, caffe_y, rtol=1e-5, atol=1e-5)


def test_command_merges_into_a_base_checkpoint(tmp_path, capsys):
    data, expected = _model(True, np.random.RandomState(3))
    (tmp_path / 'm.caffemodel').write_bytes(data)
    base = checkpoint_io.write_checkpoint(
        {'Net/conv1/weights': np.ones([3, 3, 3, 4], np.float32),
         'Net/conv1/BatchNorm/moving_mean': np.zeros(4, np.float32)},
        str(tmp_path / 'base' / 'model.ckpt'))
    code = cli.caffe_main(['--caffemodel', str(tmp_path / 'm.caffemodel'),
                           '--mapping', json.dumps({'bn1': 'Net/conv1'}),
                           '--base_checkpoint', base,
                           '--output_path', str(tmp_path / 'out' / 'model.ckpt')])
    assert code == 0
    out = capsys.readouterr().out
    assert 'bn1 -> Net/conv1: eps 0.001 (set epsilon=0.001)' in out
    written = checkpoint_io.read_checkpoint(str(tmp_path / 'out' / 'model.ckpt'))
    assert sorted(written) == ['Net/conv1/BatchNorm/beta', 'Net/conv1/BatchNorm/gamma',
                               'Net/conv1/BatchNorm/moving_mean',
                               'Net/conv1/BatchNorm/moving_variance', 'Net/conv1/weights']
    np.testing.assert_allclose(written['Net/conv1/BatchNorm/moving_mean'],
                               expected['mean_sum'] / 30.0, rtol=1e-6)


def test_errors(tmp_path, capsys):
    data, _ = _model(True, np.random.RandomState(4))
    layers = caffe.read_caffemodel(data)
    with pytest.raises(ValueError, match="'scale1', which is not a BatchNorm layer.*bn1, bn2"):
        caffe.batch_norm_variables(layers, {'scale1': 'X'})
    with pytest.raises(caffe.CaffeFormatError):
        caffe.read_caffemodel(b'\x0a\xff')  # field 1, length 255, 0 bytes follow
    with pytest.raises(caffe.CaffeFormatError, match='no layers'):
        caffe.read_caffemodel(b'\x0a\x04tiny')
    (tmp_path / 'm.caffemodel').write_bytes(data)
    with pytest.raises(SystemExit) as exit_info:
        cli.caffe_main(['--caffemodel', str(tmp_path / 'm.caffemodel'), '--mapping', '{"bn1": 3}',
                        '--output_path', str(tmp_path / 'o')])
    assert exit_info.value.code == 2 and 'non-empty scope strings' in capsys.readouterr().err
