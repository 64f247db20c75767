"""slimnorm.data.tfrecord: research/slim's TFRecord layout read with tf.data.

The records are written here with tf.io.TFRecordWriter in slim's exact layout
(its dataset_utils.image_to_tfexample keys and file names), not by our
converter.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.data import tfrecord

from tfrecord_helpers import write as _write

tf1 = tf.compat.v1


def _images(count, size=6, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (count, size, size, 3)).astype(np.uint8)


def _read_all(info, **kwargs):
    kwargs.setdefault('preprocessing_name', 'light')
    dataset = tfrecord.read_batches(info, batch_size=4, image_size=6, is_training=False,
                                    **kwargs)
    images, labels = zip(*[(i.numpy(), label.numpy()) for i, label in dataset])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def flowers(tmp_path):
    """slim's flowers layout: 2 train shards, labels.txt, 4 classes with offset 1."""
    images, labels = _images(10), np.arange(10) % 4 + 1
    names = ['flowers_train_%05d-of-00002.tfrecord' % shard for shard in range(2)]
    order = _write(str(tmp_path), names, images, labels)
    with open(tmp_path / 'labels.txt', 'w') as f:
        f.write('0:background\n1:daisy\n2:dandelion\n3:roses\n4:tulips\n')
    return str(tmp_path), images[order], labels[order]


def test_reads_slim_records_labels_and_images_exactly(flowers):
    directory, images, labels = flowers
    info = tfrecord.find_dataset(directory, 'train', 'flowers')
    assert info.num_classes == 5 and info.class_names[4] == 'tulips'
    assert [os.path.basename(f) for f in info.files] == [
        'flowers_train_00000-of-00002.tfrecord', 'flowers_train_00001-of-00002.tfrecord']
    got_images, got_labels = _read_all(info)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_allclose(got_images, images / 255.0 * 2 - 1, atol=1e-6)


def test_labels_offset_shifts_labels_and_classes(flowers):
    directory, _, labels = flowers
    info = tfrecord.find_dataset(directory, 'train', labels_offset=1)
    assert info.num_classes == 4
    assert info.class_names == {0: 'daisy', 1: 'dandelion', 2: 'roses', 3: 'tulips'}
    np.testing.assert_array_equal(_read_all(info)[1], labels - 1)


def test_jpeg_records_and_the_other_file_names(tmp_path):
    images, labels = _images(3, size=16), np.array([2, 0, 1])
    _write(str(tmp_path), ['cifar10_test.tfrecord'], images, labels, 'jpeg')
    _write(str(tmp_path), ['validation-00000-of-00001'], images[:2], labels[:2])
    info = tfrecord.find_dataset(str(tmp_path), 'test', num_classes=3)
    got, got_labels = _read_all(info, preprocessing_name='inception')
    np.testing.assert_array_equal(got_labels, labels)
    # Inception eval of a 16x16 image at size 6: TF's own JPEG decoder as reference.
    decoded = [tf.io.decode_jpeg(tf.io.encode_jpeg(image)) for image in images]
    expected = [tf.compat.v1.image.resize_bilinear(
        tf.image.central_crop(tf.image.convert_image_dtype(d, tf.float32), 0.875)[None],
        [6, 6])[0] * 2 - 1 for d in decoded]
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-6)
    imagenet = tfrecord.find_dataset(str(tmp_path), 'validation', num_classes=3)
    assert [os.path.basename(f) for f in imagenet.files] == ['validation-00000-of-00001']


@pytest.mark.parametrize('num_files', [2, 1])
def test_workers_read_disjoint_shards_that_cover_the_split(tmp_path, num_files):
    images, labels = _images(10), np.arange(10)
    names = ['digits_train_%05d-of-%05d.tfrecord' % (i, num_files) for i in range(num_files)]
    _write(str(tmp_path), names, images, labels)
    info = tfrecord.find_dataset(str(tmp_path), 'train', num_classes=10)
    parts = [_read_all(info, num_shards=2, shard_index=k)[1] for k in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(np.concatenate(parts)) == list(range(10))


def test_training_pipeline_is_shuffled_and_repeatable_under_a_seed(tmp_path):
    images, labels = _images(12, size=20), np.arange(12)
    names = ['x_train_%05d-of-00003.tfrecord' % i for i in range(3)]
    _write(str(tmp_path), names, images, labels)
    info = tfrecord.find_dataset(str(tmp_path), 'train', num_classes=12)

    def first_batches(seed, threads):
        dataset = tfrecord.read_batches(
            info, batch_size=5, image_size=8, preprocessing_name='inception',
            num_readers=2, num_preprocessing_threads=threads, shuffle_buffer=12, seed=seed)
        return [(i.numpy(), label.numpy()) for i, label in dataset.take(5)]

    one, two = first_batches(1, 1), first_batches(1, 3)
    for (images_a, labels_a), (images_b, labels_b) in zip(one, two):
        assert images_a.shape == (5, 8, 8, 3) and -1 <= images_a.min() <= images_a.max() <= 1
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_array_equal(images_a, images_b)
    labels = np.concatenate([b[1] for b in one])
    assert sorted(labels[:12]) == list(range(12))  # one epoch, then repeats
    assert list(labels[:12]) != list(range(12))
    assert not np.array_equal(np.concatenate([b[1] for b in first_batches(2, 2)]), labels)


def test_runs_in_a_tf1_graph_and_session(flowers):
    directory, images, labels = flowers
    info = tfrecord.find_dataset(directory, 'train')
    with tf.Graph().as_default():
        dataset = tfrecord.read_batches(info, batch_size=10, image_size=6,
                                        preprocessing_name='light', is_training=False)
        batch = tf1.data.make_one_shot_iterator(dataset).get_next()
        with tf1.Session() as sess:
            got_images, got_labels = sess.run(batch)
    np.testing.assert_array_equal(got_labels, labels)


def test_missing_directory_and_missing_split_are_named(tmp_path, flowers):
    directory = flowers[0]
    with pytest.raises(ValueError, match='nowhere'):
        tfrecord.find_dataset(str(tmp_path / 'nowhere'), 'train')
    with pytest.raises(ValueError) as error:
        tfrecord.find_dataset(directory, 'validation', 'flowers')
    message = str(error.value)
    for part in (directory, "'validation'", 'flowers_validation_*-of-*.tfrecord',
                 'flowers_validation.tfrecord', 'validation-[0-9]*-of-[0-9]*',
                 'flowers_train_00000-of-00002.tfrecord', 'labels.txt'):
        assert part in message
    os.remove(os.path.join(directory, 'labels.txt'))
    with pytest.raises(ValueError, match='(?=.*num_classes)(?=.*labels.txt)'):
        tfrecord.find_dataset(directory, 'train')


def test_label_file_is_slims_id_colon_name(tmp_path):
    (tmp_path / 'labels.txt').write_text('0:background\n2:tench: Tinca tinca\n\n1:goldfish\n')
    assert tfrecord.read_label_file(str(tmp_path)) == {
        0: 'background', 1: 'goldfish', 2: 'tench: Tinca tinca'}
    (tmp_path / 'labels.txt').write_text('0:a\ncat\n')
    with pytest.raises(ValueError, match=r"(?=.*line 2)(?=.*'cat')"):
        tfrecord.read_label_file(str(tmp_path))
