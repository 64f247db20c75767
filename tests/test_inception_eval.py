"""nets.inception_eval: slim's eval preprocessing and checkpoint predictions."""

import numpy as np
import pytest
import tensorflow as tf
import tf_slim as slim

from nets import inception_eval
from nets import inception_v2 as iv2

tf1 = tf.compat.v1
DECAY = 0.999


def _run(tensor):
    with tf1.Session() as sess:
        return sess.run(tensor)


def test_preprocessing_crops_the_center_and_scales_to_minus_one_one():
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (2, 256, 256, 3)).astype(np.uint8)
    with tf.Graph().as_default():
        # 0.875 of 256 is 224: the crop is exact and the resize the identity.
        out = _run(inception_eval.preprocess_for_eval(images))
    expected = images[:, 16:240, 16:240].astype(np.float32) / 255 * 2 - 1
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.min() >= -1 and out.max() <= 1


def test_preprocessing_resizes_any_size_and_keeps_constants():
    images = np.full((1, 100, 150, 3), 0.25, np.float32)
    with tf.Graph().as_default():
        out = _run(inception_eval.preprocess_for_eval(images))
    assert out.shape == (1, 224, 224, 3)
    np.testing.assert_allclose(out, -0.5, atol=1e-6)


@pytest.mark.parametrize('kwargs, message', [
    ({'central_fraction': 0.0}, r'(?=.*central_fraction)(?=.*0\.0)'),
    ({'central_fraction': 1.5}, r'(?=.*central_fraction)(?=.*1\.5)'),
    ({'images': np.zeros((224, 224, 3), np.uint8)}, r'(?=.*rank-4)(?=.*\(224, 224, 3\))'),
])
def test_preprocessing_errors(kwargs, message):
    kwargs.setdefault('images', np.zeros((1, 8, 8, 3), np.uint8))
    with tf.Graph().as_default():
        with pytest.raises(ValueError, match=message):
            inception_eval.preprocess_for_eval(**kwargs)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A checkpoint of our network with moving-average shadow variables.

    Returns the path, the images and the eval logits that the raw variables
    and the shadow variables give.
    """
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (3, 240, 300, 3)).astype(np.uint8)
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        inputs = inception_eval.preprocess_for_eval(images)
        with slim.arg_scope(iv2.inception_v2_arg_scope()):
            logits, _ = iv2.inception_v2(inputs, num_classes=1001,
                                         is_training=False)
        model_variables = slim.get_model_variables()
        tf1.train.ExponentialMovingAverage(DECAY).apply(model_variables)
        # Every model variable moves by up to 10%; the shadows stay behind.
        move = tf.group(*[v.assign(v * tf1.random_uniform(v.shape, 0.9, 1.1))
                          for v in model_variables])
        with tf1.Session() as sess:
            # The shadows start equal to the variables.
            sess.run(tf1.global_variables_initializer())
            shadow_logits = sess.run(logits)
            sess.run(move)
            raw_logits = sess.run(logits)
            directory = tmp_path_factory.mktemp('ckpt')
            path = tf1.train.Saver().save(sess, str(directory / 'model.ckpt'))
    assert np.abs(raw_logits - shadow_logits).max() > 1e-3
    return {'path': path, 'directory': str(directory), 'images': images,
            'raw': raw_logits, 'shadow': shadow_logits}


def test_predict_restores_the_checkpoint(checkpoint):
    result = inception_eval.predict(checkpoint['directory'],
                                    checkpoint['images'], batch_size=2)
    np.testing.assert_allclose(result.logits, checkpoint['raw'],
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(result.classes,
                                  np.argmax(checkpoint['raw'], axis=-1))
    np.testing.assert_allclose(result.probabilities.sum(axis=-1), 1.0,
                               rtol=1e-5)


def test_predict_with_moving_average_decay_reads_the_shadows(checkpoint):
    result = inception_eval.predict(checkpoint['path'], checkpoint['images'],
                                    moving_average_decay=DECAY)
    np.testing.assert_allclose(result.logits, checkpoint['shadow'],
                               rtol=1e-3, atol=1e-3)


def test_predict_refuses_a_missing_checkpoint(tmp_path):
    images = np.zeros((1, 224, 224, 3), np.uint8)
    with pytest.raises(ValueError, match='directory without checkpoints'):
        inception_eval.predict(str(tmp_path), images)
    with pytest.raises(ValueError, match='neither a directory with checkpoints'):
        inception_eval.predict(str(tmp_path / 'missing.ckpt'), images)
