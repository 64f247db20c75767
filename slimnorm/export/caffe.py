"""Caffe BatchNorm + Scale parameters as slim batch-norm variables.

Caffe splits batch norm into two layers:

  * `BatchNorm` holds three blobs: the running *sums* of the means and of the
    variances, and a one-element scale factor s (the running sum of the
    moving-average weights). The statistics are blob0 / s and blob1 / s (0
    when s is 0, as Caffe computes them). Its `batch_norm_param` has
    `use_global_stats` (true: normalize with those statistics, i.e. slim's
    `is_training=False`; false: with the batch's, `is_training=True`; unset:
    Caffe picks by phase, TRAIN -> batch, TEST -> stored), `eps` (default
    1e-5) and `moving_average_fraction` (slim's `decay`, default 0.999).
  * `Scale` (with `bias_term: true`) right after it holds gamma and beta.

So one slim `<scope>/BatchNorm/{moving_mean, moving_variance, gamma, beta}`
comes from one BatchNorm layer and the Scale layer that reads its output.
Caffe normalizes with (x - mean) / sqrt(var + eps): build the slim layer
with `epsilon` equal to the reported eps (used as given on every path).

The .caffemodel (a binary `NetParameter`) is decoded here from the protobuf
wire format with the field numbers of Caffe's published caffe.proto, so
neither Caffe nor its generated Python code is needed.
"""

import collections
import struct

import numpy as np

# Field numbers of BVLC Caffe's caffe.proto.
NET_LAYER = 100            # NetParameter.layer (LayerParameter)
NET_V1_LAYERS = 2          # NetParameter.layers (V1LayerParameter, no BatchNorm)
LAYER_NAME, LAYER_TYPE, LAYER_BOTTOM, LAYER_TOP, LAYER_BLOBS = 1, 2, 3, 4, 7
LAYER_BATCH_NORM_PARAM, LAYER_SCALE_PARAM = 139, 142
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1
BN_USE_GLOBAL_STATS, BN_MOVING_AVERAGE_FRACTION, BN_EPS = 1, 2, 3
SCALE_BIAS_TERM = 4
DEFAULT_EPS = 1e-5
DEFAULT_MOVING_AVERAGE_FRACTION = 0.999

CaffeLayer = collections.namedtuple(
    'CaffeLayer', ['name', 'type', 'bottom', 'top', 'blobs', 'params'])
CaffeLayer.__doc__ = """One LayerParameter: blobs as numpy arrays; params:
the decoded batch_norm_param / scale_param fields ({} for other types)."""


class CaffeFormatError(ValueError):
    """The bytes are not the protobuf encoding of a Caffe NetParameter."""


def _varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise CaffeFormatError('truncated varint at byte %d' % pos)
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CaffeFormatError('varint longer than 10 bytes at byte %d' % pos)


def fields(data):
    """Yields (field number, wire type, value) of one encoded message.

    value is an int for varints, bytes for length-delimited fields and for
    the fixed 32-bit (wire type 5) and 64-bit (wire type 1) ones.
    """
    data, pos = memoryview(data), 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = bytes(data[pos:pos + size]), pos + size
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = bytes(data[pos:pos + size]), pos + size
        else:
            raise CaffeFormatError('wire type %d (field %d) is not used by caffe.proto'
                                   % (wire, number))
        if pos > len(data) or number == 0:
            raise CaffeFormatError('truncated or invalid field %d' % number)
        yield number, wire, value


def _repeated(wire, value, dtype):
    """A repeated numeric field's items: packed (wire 2) or one item."""
    if wire == 2:
        return np.frombuffer(value, dtype)
    return np.frombuffer(value, dtype)[:1]


def _repeated_varints(wire, value):
    if wire == 0:
        return [value]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(item)
    return out


def parse_blob(data):
    """A BlobProto as a numpy array of its shape (float32, or float64)."""
    floats, doubles, dims, legacy = [], [], [], {}
    for number, wire, value in fields(data):
        if number == BLOB_DATA:
            floats.append(_repeated(wire, value, '<f4'))
        elif number == BLOB_DOUBLE_DATA:
            doubles.append(_repeated(wire, value, '<f8'))
        elif number == BLOB_SHAPE:
            for n, w, v in fields(value):
                if n == SHAPE_DIM:
                    dims.extend(_repeated_varints(w, v))
        elif number in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH) and wire == 0:
            legacy[number] = value
    values = np.concatenate(doubles) if doubles else (
        np.concatenate(floats) if floats else np.zeros(0, np.float32))
    if not dims and legacy:
        dims = [legacy.get(n, 0) for n in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH)]
    shape = [d for d in dims] if dims and int(np.prod(dims)) == values.size else [values.size]
    return values.reshape(shape)


def _parse_params(data):
    """{field number: int or float} of a batch_norm_param / scale_param."""
    params = {}
    for number, wire, value in fields(data):
        params[number] = struct.unpack('<f', value)[0] if wire == 5 else value
    return params


def parse_layer(data):
    name, kind, bottom, top, blobs, params = '', '', [], [], [], {}
    for number, wire, value in fields(data):
        if number == LAYER_NAME:
            name = value.decode('utf-8')
        elif number == LAYER_TYPE:
            kind = value.decode('utf-8')
        elif number == LAYER_BOTTOM:
            bottom.append(value.decode('utf-8'))
        elif number == LAYER_TOP:
            top.append(value.decode('utf-8'))
        elif number == LAYER_BLOBS:
            blobs.append(parse_blob(value))
        elif number in (LAYER_BATCH_NORM_PARAM, LAYER_SCALE_PARAM) and wire == 2:
            params = _parse_params(value)
    return CaffeLayer(name, kind, bottom, top, blobs, params)


def read_caffemodel(path_or_bytes):
    """The layers of a binary .caffemodel (NetParameter), in file order.

    Raises:
      CaffeFormatError: not a NetParameter, or only V1 `layers` (whose
        layer types predate BatchNorm).
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, 'rb') as f:
            data = f.read()
    layers, v1 = [], 0
    for number, wire, value in fields(data):
        if number == NET_LAYER and wire == 2:
            layers.append(parse_layer(value))
        elif number == NET_V1_LAYERS:
            v1 += 1
    if not layers:
        raise CaffeFormatError(
            'no layers in this NetParameter%s' % (
                ' (only %d V1 "layers", a format without BatchNorm: upgrade the '
                'model with Caffe\'s upgrade_net_proto_binary first)' % v1 if v1 else ''))
    return layers


def _following_scale(layers, index):
    """The Scale layer reading the output of layers[index], if any."""
    top = layers[index].top[0] if layers[index].top else None
    for layer in layers[index + 1:]:
        if layer.type == 'Scale' and layer.bottom and layer.bottom[0] == top:
            return layer
        if top in layer.top:
            return None  # the blob was overwritten by something else first
    return None


def batch_norm_variables(layers, mapping):
    """slim variables from Caffe layers; returns (values, info).

    Args:
      layers: from `read_caffemodel`.
      mapping: {Caffe BatchNorm layer name: slim scope}, e.g.
        {'conv1/bn': 'MyNet/conv1'} -> 'MyNet/conv1/BatchNorm/moving_mean'...

    Returns:
      values: {variable name: float32 array}; gamma and beta only when a
        Scale layer (with bias_term for beta) follows.
      info: {Caffe layer name: {'eps', 'decay', 'use_global_stats', 'scale'}}.

    Raises:
      ValueError: a name of `mapping` that is no BatchNorm layer, or blobs
        that are not Caffe's three (mean sum, variance sum, factor).
    """
    by_name = {layer.name: k for k, layer in enumerate(layers)}
    batch_norms = sorted(layer.name for layer in layers if layer.type == 'BatchNorm')
    values, info = {}, {}
    for name, scope in mapping.items():
        if name not in by_name or layers[by_name[name]].type != 'BatchNorm':
            raise ValueError('mapping names %r, which is not a BatchNorm layer of the '
                             'model; its BatchNorm layers: %s'
                             % (name, ', '.join(batch_norms) or 'none'))
        layer = layers[by_name[name]]
        if len(layer.blobs) != 3 or layer.blobs[2].size != 1:
            raise ValueError('BatchNorm layer %r has blobs of shapes %s; expected '
                             '[C], [C], [1]' % (name, [list(b.shape) for b in layer.blobs]))
        mean_sum, variance_sum, factor = (b.astype(np.float64).reshape(-1)
                                          for b in layer.blobs)
        inverse = 0.0 if factor[0] == 0 else 1.0 / factor[0]
        prefix = scope.rstrip('/') + '/BatchNorm/'
        values[prefix + 'moving_mean'] = (mean_sum * inverse).astype(np.float32)
        values[prefix + 'moving_variance'] = (variance_sum * inverse).astype(np.float32)
        scale = _following_scale(layers, by_name[name])
        if scale is not None and scale.blobs:
            values[prefix + 'gamma'] = scale.blobs[0].reshape(-1).astype(np.float32)
            if len(scale.blobs) > 1:
                values[prefix + 'beta'] = scale.blobs[1].reshape(-1).astype(np.float32)
        info[name] = {
            'eps': float(layer.params.get(BN_EPS, DEFAULT_EPS)),
            'decay': float(layer.params.get(BN_MOVING_AVERAGE_FRACTION,
                                            DEFAULT_MOVING_AVERAGE_FRACTION)),
            'use_global_stats': (bool(layer.params[BN_USE_GLOBAL_STATS])
                                 if BN_USE_GLOBAL_STATS in layer.params else None),
            'scale': scale.name if scale is not None else None,
        }
    return values, info


def caffe_to_checkpoint(caffemodel, mapping, output_prefix, base_checkpoint=None):
    """Writes the mapped BatchNorm+Scale parameters as a slim checkpoint.

    With `base_checkpoint`, every tensor of it is copied and the imported
    ones replace (or add to) them; an imported value whose shape differs
    from the base's is refused. Returns (prefix written, info).
    """
    from slimnorm.export import checkpoint_io
    values, info = batch_norm_variables(read_caffemodel(caffemodel), mapping)
    if base_checkpoint is not None:
        base = checkpoint_io.read_checkpoint(base_checkpoint)
        for name, value in values.items():
            if name in base and base[name].shape != value.shape:
                raise ValueError('%s: shape %s in the Caffe model, %s in base_checkpoint'
                                 % (name, list(value.shape), list(base[name].shape)))
        values = dict(base, **values)
    return checkpoint_io.write_checkpoint(values, output_prefix), info
