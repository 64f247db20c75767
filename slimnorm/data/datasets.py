"""Real image data sets for the training scripts, loaded from installed files.

Nothing here downloads anything. Every loader reads data that a package put
on disk, and a missing package is reported by name:

- ``digits``: scikit-learn's bundled ``load_digits`` (1,797 8x8 images,
  10 classes). Install: ``pip install scikit-learn`` (the ``[data]`` extra).
- ``fashion_mnist``: Debian's ``dataset-fashion-mnist`` package, IDX files in
  ``FASHION_MNIST_DIR`` (60,000/10,000 28x28 images, 10 classes). Install:
  ``apt-get install dataset-fashion-mnist``.
- ``mnist_dir``: any directory ``data_dir`` of MNIST-format IDX files
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
  ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; gzipped or
  not), e.g. the original MNIST wherever a user keeps it.

All loaders return a :class:`Dataset` whose images are float32 NHWC arrays
scaled to [0, 1] (not standardized: the networks normalize their own
activations, and [0, 1] keeps the inputs of every data set on one scale) and
whose labels are int64 class ids in ``[0, num_classes)``.

``digits`` has no official split, so it is split here: stratified by class,
with a fixed seed, 20% of each class held out for test (359 test images).

Feeding: the training loop feeds numpy batches through ``feed_dict``, drawn
by :class:`BatchSchedule`. It was as fast as a ``tf.data`` pipeline on this
project's CPU machines (docs/training_notes.md), and it has
two advantages: the batch order is a pure function of ``(seed, step)``, so a
run resumed from a checkpoint sees exactly the batches it would have seen,
and the data never becomes a graph constant (which would be copied into every
exported meta graph).

This module is not imported by ``import slimnorm``; scikit-learn is imported
only when ``digits`` is loaded.
"""
import gzip
import os
from dataclasses import dataclass

import numpy as np

from slimnorm import checks
from slimnorm.choices import DATASETS

FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

# IDX type codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype('u1'),
    0x09: np.dtype('i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
# The file names an IDX split may have: the usual one and the dotted one that
# some MNIST mirrors use; either may be gzipped.
_IDX_NAME_PATTERNS = ('{split}-{kind}-idx{ndim}-ubyte', '{split}-{kind}.idx{ndim}-ubyte')


class DatasetUnavailableError(FileNotFoundError):
    """The files (or the package) a data set is read from are not there."""


class DatasetFormatError(ValueError):
    """A data file is there but is not what its name says it is."""


@dataclass(frozen=True)
class Dataset:
    """A train/test split of labelled images.

    Images are float32 NHWC in [0, 1]; labels are int64 in [0, num_classes).
    """
    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int

    @property
    def image_shape(self):
        """(height, width, channels) of one image."""
        return tuple(self.train_images.shape[1:])

    def split(self, name):
        """Returns (images, labels) of split ``'train'`` or ``'test'``."""
        if name == 'train':
            return self.train_images, self.train_labels
        if name == 'test':
            return self.test_images, self.test_labels
        raise ValueError(f"split={name!r} is not a split; use 'train' or 'test'")


def load(name, data_dir=None):
    """Loads data set ``name`` (one of ``DATASETS``).

    ``data_dir`` is required for ``mnist_dir``; for ``fashion_mnist`` it
    overrides ``FASHION_MNIST_DIR``; ``digits`` does not take it.
    """
    checks.one_of(name, DATASETS, 'dataset')
    if name == 'digits':
        if data_dir is not None:
            raise ValueError(f'data_dir={data_dir!r} is not used by dataset=digits '
                             '(it comes from scikit-learn); leave it unset')
        return load_digits()
    if name == 'fashion_mnist':
        return load_fashion_mnist(data_dir or FASHION_MNIST_DIR)
    if data_dir is None:
        raise ValueError('data_dir=None: dataset=mnist_dir needs the directory '
                         'holding train-images-idx3-ubyte.gz and the other IDX files')
    return load_idx_dir(data_dir)


def load_digits(test_fraction=DIGITS_TEST_FRACTION, seed=DIGITS_SPLIT_SEED):
    """scikit-learn's 8x8 digits, split per class with a fixed seed."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f'test_fraction={test_fraction!r} must be in (0, 1)')
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as err:
        raise DatasetUnavailableError(
            'dataset=digits needs scikit-learn, which is not installed; install it '
            "with `pip install scikit-learn` (or `pip install -e '.[data]'`)") from err
    bunch = sklearn_load_digits()
    # Pixel values are counts 0..16 of an original 32x32 bitmap's 4x4 blocks.
    images = (bunch.images.astype(np.float32) / 16.0)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    return Dataset('digits', images[train_idx], labels[train_idx],
                   images[test_idx], labels[test_idx], num_classes=10)


def stratified_split(labels, test_fraction, seed):
    """Indices (train, test) holding out ``test_fraction`` of every class.

    Deterministic for a given ``(labels, test_fraction, seed)``; both index
    arrays are sorted so that the split does not depend on class order.
    """
    rng = np.random.RandomState(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        n_test = int(round(test_fraction * len(members)))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_fashion_mnist(data_dir=FASHION_MNIST_DIR):
    """Fashion-MNIST's official 60,000/10,000 split from its IDX files."""
    if not os.path.isdir(data_dir):
        raise DatasetUnavailableError(
            f'Fashion-MNIST not found: data_dir={data_dir!r} does not exist; install it '
            'with `apt-get install dataset-fashion-mnist` (Debian), or point data_dir '
            'at a directory holding its four IDX .gz files')
    try:
        return load_idx_dir(data_dir, name='fashion_mnist', num_classes=10)
    except DatasetUnavailableError as err:
        raise DatasetUnavailableError(
            f'{err}; Fashion-MNIST comes with `apt-get install dataset-fashion-mnist`') from err


def load_idx_dir(data_dir, name='mnist_dir', num_classes=None):
    """MNIST-format IDX files in ``data_dir``: ``train-*`` and ``t10k-*``.

    Images must be unsigned bytes of rank 3 (N, H, W), labels unsigned bytes
    of rank 1 (N,), with matching counts. ``num_classes`` defaults to one more
    than the largest label seen; given, every label must be below it.
    """
    if not os.path.isdir(data_dir):
        raise DatasetUnavailableError(f'data_dir={data_dir!r} is not a directory')
    arrays = {}
    for split in ('train', 't10k'):
        images = read_idx(_find_idx_file(data_dir, split, 'images', 3))
        labels = read_idx(_find_idx_file(data_dir, split, 'labels', 1))
        _check_pair(split, images, labels)
        arrays[split] = (images, labels)
    max_label = max(int(arrays[s][1].max(initial=0)) for s in arrays)
    if num_classes is None:
        num_classes = max_label + 1
    elif max_label >= num_classes:
        raise DatasetFormatError(f'{data_dir}: label {max_label} found, but '
                                 f'num_classes={num_classes} allows only 0..{num_classes - 1}')
    if arrays['train'][0].shape[1:] != arrays['t10k'][0].shape[1:]:
        raise DatasetFormatError(f'{data_dir}: train images are {arrays["train"][0].shape[1:]} '
                                 f'but test images are {arrays["t10k"][0].shape[1:]}')

    def as_float(images):
        return (images.astype(np.float32) / 255.0)[..., np.newaxis]

    return Dataset(name,
                   as_float(arrays['train'][0]), arrays['train'][1].astype(np.int64),
                   as_float(arrays['t10k'][0]), arrays['t10k'][1].astype(np.int64),
                   num_classes=num_classes)


def _find_idx_file(data_dir, split, kind, ndim):
    candidates = []
    for pattern in _IDX_NAME_PATTERNS:
        base = os.path.join(data_dir, pattern.format(split=split, kind=kind, ndim=ndim))
        candidates += [base + '.gz', base]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DatasetUnavailableError(
        f'data_dir={data_dir!r} has no {split} {kind} file; looked for '
        + ', '.join(os.path.basename(c) for c in candidates))


def _check_pair(split, images, labels):
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetFormatError(f'{split} images must be uint8 of rank 3 (N, H, W), '
                                 f'got {images.dtype} of shape {images.shape}')
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetFormatError(f'{split} labels must be uint8 of rank 1 (N,), '
                                 f'got {labels.dtype} of shape {labels.shape}')
    if len(images) != len(labels):
        raise DatasetFormatError(f'{split}: {len(images)} images but {len(labels)} labels')
    if len(images) == 0:
        raise DatasetFormatError(f'{split}: the files hold no examples')


def read_idx(path):
    """Reads one IDX file (optionally gzipped) into a numpy array.

    Checks the magic number (two zero bytes, a known type code, the rank),
    and that the payload holds exactly the product of the dimensions.
    """
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip raises these on corrupt files
        raise DatasetFormatError(f'{path}: cannot be read as IDX ({err})') from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetFormatError(
            f'{path}: bad IDX magic number {data[:4].hex() or "(empty file)"}; expected '
            f'00 00 <type code, one of {sorted(_IDX_DTYPES)}> <rank>')
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f'{path}: truncated IDX header (rank {ndim})')
    shape = tuple(int(d) for d in np.frombuffer(data, '>u4', count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetFormatError(f'{path}: header says shape {shape} ({expected} bytes) '
                                 f'but {len(data) - header} bytes follow it')
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder('='))


class BatchSchedule:
    """Which training examples go into the batch of each step.

    Epoch ``e`` visits the examples in the order of a permutation seeded by
    ``(seed, e)``; the batches of a step run on across epoch boundaries, so
    every batch has exactly ``batch_size`` examples. The batch of a step is a
    pure function of ``(num_examples, batch_size, seed, step)``: a run resumed
    at step ``s`` continues with the same batches as an uninterrupted one.
    """

    def __init__(self, num_examples, batch_size, seed=0):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size={batch_size!r} must be a positive integer')
        if num_examples < 1:
            raise ValueError(f'num_examples={num_examples!r}: there is nothing to batch')
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self._cached_epoch = None
        self._cached_order = None

    def _order(self, epoch):
        if epoch != self._cached_epoch:
            rng = np.random.RandomState([self.seed % (2 ** 32), epoch % (2 ** 32)])
            self._cached_order = rng.permutation(self.num_examples)
            self._cached_epoch = epoch
        return self._cached_order

    def indices(self, step):
        """The example indices of the batch of global step ``step``."""
        start = step * self.batch_size
        out = np.empty(self.batch_size, np.int64)
        filled = 0
        while filled < self.batch_size:
            epoch, offset = divmod(start + filled, self.num_examples)
            take = min(self.batch_size - filled, self.num_examples - offset)
            out[filled:filled + take] = self._order(epoch)[offset:offset + take]
            filled += take
        return out

    def epoch_of(self, step):
        """The (fractional) number of epochs completed before ``step``."""
        return step * self.batch_size / self.num_examples
