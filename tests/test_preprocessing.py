"""slimnorm.data.preprocessing: slim's Inception preprocessing and the light one."""
import numpy as np
import pytest
import tensorflow as tf

from nets import inception_eval
from slimnorm.data import preprocessing


def numpy_resize_bilinear(image, height, width):
    """TF1 resize_bilinear (align_corners=False, no half-pixel centres), in numpy."""
    in_h, in_w = image.shape[:2]

    def taps(out_size, in_size):
        source = np.arange(out_size) * (in_size / out_size)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, in_size - 1), source - low

    y0, y1, fy = taps(height, in_h)
    x0, x1, fx = taps(width, in_w)
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def numpy_eval(image, height, width, fraction):
    """Central crop (start = int((size - size * fraction) / 2)), resize, [-1, 1]."""
    image = image.astype(np.float64) / 255.0
    h, w = image.shape[:2]
    top, left = int((h - h * fraction) / 2), int((w - w * fraction) / 2)
    image = image[top:h - top, left:w - left]
    return (numpy_resize_bilinear(image, height, width) - 0.5) * 2.0


@pytest.mark.parametrize('shape, size, fraction', [
    ((37, 50, 3), (20, 30), 0.875), ((64, 48, 3), (41, 41), 0.5), ((9, 9, 3), (16, 16), 1.0)])
def test_eval_matches_numpy_crop_and_bilinear_resize(shape, size, fraction):
    image = np.random.RandomState(0).randint(0, 256, shape).astype(np.uint8)
    out = preprocessing.preprocess_for_eval(image, *size, central_fraction=fraction).numpy()
    # TF computes the source coordinates in float32: a few 1e-6 of rounding,
    # far below one grey level (2/255 after scaling).
    np.testing.assert_allclose(out, numpy_eval(image, *size, fraction), atol=1e-5)
    batch = preprocessing.preprocess_for_eval(image[None], *size, central_fraction=fraction)
    np.testing.assert_array_equal(batch.numpy()[0], out)


def test_nets_inception_eval_uses_the_same_preprocessing():
    images = np.random.RandomState(1).randint(0, 256, (2, 40, 30, 3)).astype(np.uint8)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        ours = sess.run(inception_eval.preprocess_for_eval(images, 24, 24))
    for image, out in zip(images, ours):
        np.testing.assert_allclose(out, numpy_eval(image, 24, 24, 0.875), atol=1e-5)


@pytest.mark.parametrize('fast_mode', [True, False])
def test_train_shape_range_and_determinism_under_a_seed(fast_mode):
    image = np.random.RandomState(2).randint(0, 256, (60, 80, 3)).astype(np.uint8)

    def run(seed):
        return preprocessing.preprocess_for_train(
            image, 32, 24, tf.constant(seed), fast_mode=fast_mode).numpy()

    first = run([3, 4])
    assert first.shape == (32, 24, 3) and first.dtype == np.float32
    assert first.min() >= -1.0 and first.max() <= 1.0
    np.testing.assert_array_equal(run([3, 4]), first)
    others = [run([3, k]) for k in range(5, 9)]
    assert all(not np.array_equal(other, first) for other in others)


def test_train_crop_keeps_image_content():
    # Crops of a constant image are constant: only the colour distortion
    # (brightness +-32/255, then saturation, which leaves grey unchanged) moves it.
    image = np.full((50, 70, 3), 128, np.uint8)
    for k in range(5):
        out = preprocessing.preprocess_for_train(image, 16, 16, tf.constant([0, k])).numpy()
        assert np.ptp(out) < 1e-5
        value = out[0, 0, 0] / 2 + 0.5
        assert abs(value - 128 / 255) <= 32 / 255 + 1e-6


def test_distorted_crop_uses_slims_area_and_aspect_bounds():
    image = tf.zeros((100, 100, 3))
    for k in range(40):
        crop = preprocessing.distorted_bounding_box_crop(image, tf.constant([1, k]))
        h, w = crop.shape[:2]
        assert 0.05 * 100 * 100 - 200 <= h * w <= 100 * 100
        assert (h, w) == (100, 100) or 0.75 - 0.05 <= w / h <= 1.33 + 0.05


def test_light_preprocessing_scales_small_images_exactly():
    image = np.random.RandomState(3).randint(0, 256, (8, 8, 1)).astype(np.uint8)
    out = preprocessing.get_preprocessing('small_convnet', is_training=False)(image, 8, 8)
    np.testing.assert_allclose(out.numpy(), image / 255.0 * 2 - 1, atol=1e-6)
    train = preprocessing.get_preprocessing('light', is_training=True)
    np.testing.assert_allclose(train(image, 8, 8, tf.constant([0, 0])).numpy(),
                               out.numpy())


def test_factory_defaults_per_model_as_slims():
    assert preprocessing.get_preprocessing('inception_v2', True) is \
        preprocessing.preprocess_for_train
    with pytest.raises(ValueError, match=r"(?=.*preprocessing_name)(?=.*'vgg')"):
        preprocessing.get_preprocessing('vgg', True)
    with pytest.raises(ValueError, match='image'):
        preprocessing.preprocess_for_train(np.zeros((1, 8, 8, 3), np.uint8), 4, 4,
                                           tf.constant([0, 0]))
