"""slimnorm.data.datasets: digits split, IDX parsing, Fashion-MNIST, batch schedule."""
import gzip
import os
import struct
import sys

import numpy as np
import pytest

from slimnorm.data import datasets


def _write_idx(path, array, type_code=0x08, magic=None):
    header = magic if magic is not None else bytes([0, 0, type_code, array.ndim])
    header += b''.join(struct.pack('>I', d) for d in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder('>')).tobytes()
    opener = gzip.open if str(path).endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(payload)


def _write_split(directory, split, images, labels, gz=True):
    suffix = '.gz' if gz else ''
    _write_idx(os.path.join(directory, f'{split}-images-idx3-ubyte{suffix}'), images)
    _write_idx(os.path.join(directory, f'{split}-labels-idx1-ubyte{suffix}'), labels)


def _fake_mnist(directory, n_train=12, n_test=5, size=6, classes=4, gz=True):
    rng = np.random.RandomState(0)
    train = rng.randint(0, 256, (n_train, size, size)).astype(np.uint8)
    test = rng.randint(0, 256, (n_test, size, size)).astype(np.uint8)
    train_labels = (np.arange(n_train) % classes).astype(np.uint8)
    test_labels = (np.arange(n_test) % classes).astype(np.uint8)
    _write_split(directory, 'train', train, train_labels, gz)
    _write_split(directory, 't10k', test, test_labels, gz)
    return train, train_labels, test, test_labels


def test_digits_split_is_stratified_fixed_and_scaled():
    data = datasets.load('digits')
    assert data.train_images.shape == (1438, 8, 8, 1)
    assert data.test_images.shape == (359, 8, 8, 1)
    assert data.train_images.dtype == np.float32 and data.train_labels.dtype == np.int64
    assert 0.0 == data.train_images.min() and data.train_images.max() == 1.0
    assert data.num_classes == 10 and data.image_shape == (8, 8, 1)
    per_class = np.bincount(data.test_labels, minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37  # 20% of 174..183
    again = datasets.load_digits()
    np.testing.assert_array_equal(again.test_labels, data.test_labels)
    np.testing.assert_array_equal(again.test_images, data.test_images)
    train_idx, test_idx = datasets.stratified_split(np.repeat(np.arange(3), 10), 0.2, 0)
    assert len(set(train_idx) & set(test_idx)) == 0 and len(train_idx) + len(test_idx) == 30


def test_digits_without_scikit_learn_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'sklearn.datasets', None)
    with pytest.raises(datasets.DatasetUnavailableError, match='pip install scikit-learn'):
        datasets.load('digits')


@pytest.mark.parametrize('gz', [True, False])
def test_idx_directory_round_trip(tmp_path, gz):
    train, train_labels, test, test_labels = _fake_mnist(str(tmp_path), gz=gz)
    data = datasets.load('mnist_dir', data_dir=str(tmp_path))
    assert data.name == 'mnist_dir' and data.num_classes == 4
    assert data.train_images.shape == (12, 6, 6, 1) and data.test_images.shape == (5, 6, 6, 1)
    np.testing.assert_allclose(data.train_images[..., 0], train / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.test_labels, test_labels)
    assert data.train_labels.dtype == np.int64


def test_read_idx_checks_magic_size_and_type(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / 'good-idx3-ubyte'
    _write_idx(good, array)
    np.testing.assert_array_equal(datasets.read_idx(str(good)), array)
    shorts = tmp_path / 'shorts'
    _write_idx(shorts, np.arange(6, dtype=np.int16).reshape(2, 3) - 3, type_code=0x0B)
    np.testing.assert_array_equal(datasets.read_idx(str(shorts)), np.arange(6).reshape(2, 3) - 3)

    bad_magic = tmp_path / 'bad-magic'
    _write_idx(bad_magic, array, magic=b'\x12\x34\x08\x03')
    with pytest.raises(datasets.DatasetFormatError, match='bad IDX magic number 12340803'):
        datasets.read_idx(str(bad_magic))
    truncated = tmp_path / 'truncated'
    truncated.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(datasets.DatasetFormatError, match=r'shape \(2, 3, 4\) \(24 bytes\) but 19'):
        datasets.read_idx(str(truncated))
    not_gzip = tmp_path / 'broken.gz'
    not_gzip.write_bytes(b'not gzip at all')
    with pytest.raises(datasets.DatasetFormatError, match='cannot be read as IDX'):
        datasets.read_idx(str(not_gzip))


def test_idx_directory_checks_counts_ranks_and_labels(tmp_path):
    _fake_mnist(str(tmp_path))
    _write_idx(str(tmp_path / 't10k-labels-idx1-ubyte.gz'), np.zeros(4, np.uint8))
    with pytest.raises(datasets.DatasetFormatError, match='t10k: 5 images but 4 labels'):
        datasets.load_idx_dir(str(tmp_path))
    _write_idx(str(tmp_path / 't10k-labels-idx1-ubyte.gz'), np.full(5, 12, np.uint8))
    with pytest.raises(datasets.DatasetFormatError, match='label 12 found, but num_classes=10'):
        datasets.load_idx_dir(str(tmp_path), num_classes=10)
    _write_idx(str(tmp_path / 't10k-labels-idx1-ubyte.gz'), np.zeros((5, 1), np.uint8))
    with pytest.raises(datasets.DatasetFormatError, match='labels must be uint8 of rank 1'):
        datasets.load_idx_dir(str(tmp_path))


def test_missing_files_and_directories_are_reported(tmp_path):
    with pytest.raises(datasets.DatasetUnavailableError, match='no train images file'):
        datasets.load('mnist_dir', data_dir=str(tmp_path))
    with pytest.raises(datasets.DatasetUnavailableError,
                       match='apt-get install dataset-fashion-mnist'):
        datasets.load('fashion_mnist', data_dir=str(tmp_path / 'absent'))
    with pytest.raises(datasets.DatasetUnavailableError,
                       match='apt-get install dataset-fashion-mnist'):
        datasets.load('fashion_mnist', data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="(?=.*dataset)(?=.*'cifar')(?=.*digits)"):
        datasets.load('cifar')
    with pytest.raises(ValueError, match='data_dir=None: dataset=mnist_dir needs'):
        datasets.load('mnist_dir')


@pytest.mark.skipif(not os.path.isdir(datasets.FASHION_MNIST_DIR),
                    reason='apt-get install dataset-fashion-mnist')
def test_fashion_mnist_from_the_debian_package():
    data = datasets.load('fashion_mnist')
    assert data.train_images.shape == (60000, 28, 28, 1)
    assert data.test_images.shape == (10000, 28, 28, 1)
    assert data.num_classes == 10
    np.testing.assert_array_equal(np.bincount(data.test_labels), np.full(10, 1000))
    assert data.train_images.dtype == np.float32 and 0 <= data.test_images.min() < 0.01
    assert data.test_images.max() == 1.0


def test_batch_schedule_covers_each_epoch_and_resumes_identically():
    schedule = datasets.BatchSchedule(num_examples=10, batch_size=4, seed=3)
    batches = [schedule.indices(step) for step in range(5)]  # 20 indices: 2 epochs
    flat = np.concatenate(batches)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert not np.array_equal(flat[:10], flat[10:])  # each epoch reshuffled
    resumed = datasets.BatchSchedule(10, 4, seed=3)
    np.testing.assert_array_equal(resumed.indices(3), batches[3])
    other_seed = datasets.BatchSchedule(10, 4, seed=4)
    assert not np.array_equal(np.concatenate([other_seed.indices(s) for s in range(3)]),
                              flat[:12])
    assert schedule.epoch_of(5) == 2.0
    with pytest.raises(ValueError, match='batch_size=0 must be a positive integer'):
        datasets.BatchSchedule(10, 0)
