"""research/slim's image preprocessing: Inception (train and eval) and a light one.

    preprocess = get_preprocessing('inception', is_training=True)
    image = preprocess(uint8_image, 224, 224, seed=tf.constant([7, 0]))

- ``inception`` for training (slim's ``inception_preprocessing.preprocess_for_train``
  in its default ``fast_mode``): a crop drawn by
  ``sample_distorted_bounding_box`` with slim's defaults (it must cover at
  least 10% of the image, aspect ratio in [0.75, 1.33], area 5%..100% of the
  image, 100 attempts, else the whole image), bilinear resize, random left-right
  flip, colour distortion (brightness +-32/255, saturation 0.5..1.5; without
  ``fast_mode`` also hue +-0.2 and contrast 0.5..1.5 in one of four orders
  drawn per image), clip to [0, 1], scale to [-1, 1].
- ``inception`` for evaluation: central crop of 0.875 of each side, bilinear
  resize with TF1's ``resize_bilinear`` (no half-pixel centres, as slim), scale
  to [-1, 1]. The one implementation; `nets.inception_eval` uses it.
- ``light`` for small images (8x8 digits, 28x28 MNIST, 32x32 CIFAR): training
  takes a random flip only when ``flip=True``; both paths resize only when the
  size differs and scale to [-1, 1]. Crops of a 8x8 image would destroy it.

Unlike slim, training randomness is *stateless*: every random op takes its
seed from the ``seed`` argument (a [2] integer tensor), so a ``tf.data``
pipeline that derives one seed per element gives the same images whatever
``num_parallel_calls`` is, and a resumed run can reproduce them.
"""
import tensorflow as tf

from slimnorm import checks
from slimnorm.choices import DEFAULT_PREPROCESSING, PREPROCESSINGS

tf1 = tf.compat.v1

# slim's distorted_bounding_box_crop defaults.
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_ATTEMPTS = 100
EVAL_CENTRAL_FRACTION = 0.875


def _check_rank(image, accepted, what):
    """ValueError naming the shape unless image's static rank is in accepted."""
    if image.shape.rank not in accepted:
        raise ValueError(f'image must be {what}, got shape {image.shape}')


def _to_float(image):
    """uint8 -> float32 in [0, 1]; float images must already be in [0, 1]."""
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.float32:
        image = tf.image.convert_image_dtype(image, tf.float32)
    return image


def _resize(image, height, width):
    """TF1 `resize_bilinear` (align_corners=False) of one image or a batch."""
    if image.shape.rank == 3:
        return tf1.image.resize_bilinear(image[tf.newaxis], [height, width],
                                         align_corners=False)[0]
    return tf1.image.resize_bilinear(image, [height, width], align_corners=False)


def _scale(image):
    """[0, 1] -> [-1, 1], as every slim Inception checkpoint expects."""
    return (image - 0.5) * 2.0


def preprocess_for_eval(image, height=224, width=224,
                        central_fraction=EVAL_CENTRAL_FRACTION):
    """slim's `inception_preprocessing.preprocess_for_eval`.

    Args:
      image: one [height, width, channels] image or a batch of them; uint8,
        or float32 already in [0, 1].
      height, width: output size; None skips the resize.
      central_fraction: fraction of each side kept, in (0, 1]; None or 1.0
        keeps the whole image.

    Raises:
      ValueError: image not rank 3 or 4, or central_fraction outside (0, 1].
    """
    image = tf.convert_to_tensor(image)
    _check_rank(image, (3, 4), 'one [height, width, channels] image or a batch')
    if central_fraction is not None:
        checks.positive(central_fraction, 'central_fraction')
        checks.unit_interval(central_fraction, 'central_fraction')
    image = _to_float(image)
    if central_fraction and central_fraction < 1.0:
        image = tf.image.central_crop(image, central_fraction)
    if height and width:
        image = _resize(image, height, width)
    return _scale(image)


def _seeds(seed, count):
    """`count` independent stateless seeds from one [2] seed."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))


def distorted_bounding_box_crop(image, seed, min_object_covered=MIN_OBJECT_COVERED,
                                aspect_ratio_range=ASPECT_RATIO_RANGE,
                                area_range=AREA_RANGE, max_attempts=MAX_ATTEMPTS):
    """slim's random crop: a box covering >= min_object_covered of the image."""
    whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=whole_image, seed=seed,
        min_object_covered=min_object_covered,
        aspect_ratio_range=aspect_ratio_range, area_range=area_range,
        max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
    return tf.slice(image, begin, size)


def distort_color(image, seed, ordering=0, fast_mode=True):
    """slim's `distort_color`: one of its four orders, then clip to [0, 1]."""
    brightness, saturation, hue, contrast = _seeds(seed, 4)
    ops = {
        'b': lambda x: tf.image.stateless_random_brightness(x, 32.0 / 255.0, brightness),
        's': lambda x: tf.image.stateless_random_saturation(x, 0.5, 1.5, saturation),
        'h': lambda x: tf.image.stateless_random_hue(x, 0.2, hue),
        'c': lambda x: tf.image.stateless_random_contrast(x, 0.5, 1.5, contrast),
    }
    orders = ('bs',) if fast_mode else ('bshc', 'sbch', 'chbs', 'hscb')
    order = orders[ordering]
    for op in order:
        image = ops[op](image)
    return tf.clip_by_value(image, 0.0, 1.0)


def preprocess_for_train(image, height, width, seed, fast_mode=True):
    """slim's `inception_preprocessing.preprocess_for_train` (no bounding boxes).

    Args:
      image: [height, width, 3] uint8, or float32 in [0, 1].
      height, width: output size.
      seed: [2] integer tensor; the same seed gives the same output.
      fast_mode: as slim's: True (its default) uses one resize method and
        brightness + saturation only; False draws one of four resize methods
        and one of four colour orders per image.

    Returns:
      [height, width, 3] float32 in [-1, 1].
    """
    image = tf.convert_to_tensor(image)
    _check_rank(image, (3,), 'one [height, width, 3] image')
    crop_seed, resize_seed, flip_seed, color_seed, order_seed = _seeds(seed, 5)
    image = distorted_bounding_box_crop(_to_float(image), crop_seed)
    image.set_shape([None, None, 3])
    if fast_mode:
        image = _resize(image, height, width)
    else:
        methods = ('bilinear', 'nearest', 'bicubic', 'area')
        pick = tf.random.stateless_uniform([], resize_seed, maxval=4, dtype=tf.int32)
        image = tf.switch_case(pick, [
            (lambda m=m: tf.image.resize(image, [height, width], method=m))
            for m in methods])
        image.set_shape([height, width, 3])
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    if fast_mode:
        image = distort_color(image, color_seed)
    else:
        pick = tf.random.stateless_uniform([], order_seed, maxval=4, dtype=tf.int32)
        image = tf.switch_case(pick, [
            (lambda o=o: distort_color(image, color_seed, o, fast_mode=False))
            for o in range(4)])
    return _scale(image)


def preprocess_light(image, height, width, is_training=False, seed=None, flip=False):
    """For small images: [0, 1] floats, resize when the size differs, [-1, 1].

    A random left-right flip is applied in training only with ``flip=True``
    (digits are not mirror-symmetric); it then needs ``seed``.
    """
    image = _to_float(image)
    _check_rank(image, (3, 4), 'one [height, width, channels] image or a batch')
    if height and width and tuple(image.shape[-3:-1]) != (height, width):
        image = _resize(image, height, width)
    if is_training and flip:
        if seed is None:
            raise ValueError('seed=None: preprocess_light(flip=True) needs a [2] '
                             'integer seed tensor')
        image = tf.image.stateless_random_flip_left_right(image, seed)
    return _scale(image)


def get_preprocessing(name, is_training):
    """research/slim's `preprocessing_factory.get_preprocessing`.

    Args:
      name: one of `slimnorm.choices.PREPROCESSINGS`, or a model name of
        `slimnorm.choices.MODELS` (its default, DEFAULT_PREPROCESSING, as
        slim's factory chose).
      is_training: True for the training path, False for evaluation.

    Returns:
      fn(image, height, width, seed) -> float32 image in [-1, 1]; ``seed`` is
      used by the training paths and ignored in evaluation.
    """
    checks.one_of(name, PREPROCESSINGS + tuple(DEFAULT_PREPROCESSING), 'preprocessing_name')
    checks.boolean(is_training, 'is_training')
    name = DEFAULT_PREPROCESSING.get(name, name)
    if name == 'inception':
        if is_training:
            return preprocess_for_train
        return lambda image, height, width, seed=None: preprocess_for_eval(
            image, height, width)
    return lambda image, height, width, seed=None: preprocess_light(
        image, height, width, is_training=is_training, seed=seed)
