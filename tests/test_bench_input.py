"""slimnorm.bench.input_pipeline: its data and its arithmetic (the timing itself is not tested)."""
import numpy as np
import pytest

from slimnorm.bench import input_pipeline
from slimnorm.data import tfrecord


def test_photo_records_hold_scikit_learns_photos(tmp_path):
    from sklearn.datasets import load_sample_images
    input_pipeline.write_photo_records(str(tmp_path), 3)
    info = tfrecord.find_dataset(str(tmp_path), 'train')
    assert info.num_classes == input_pipeline.NUM_CLASSES
    dataset = tfrecord.read_batches(info, batch_size=3, image_size=8, is_training=False,
                                    preprocessing_name='light')
    assert [labels.numpy().tolist() for _, labels in dataset] == [[0, 1, 2]]
    # Decoded by TensorFlow here and by PIL in scikit-learn: JPEG decoders may
    # differ by a level or two per pixel, not more.
    import tensorflow as tf
    photos = load_sample_images().images  # china, flower
    for index in range(3):
        record = next(iter(tf.data.TFRecordDataset(info.files).skip(index).take(1)))
        image, _ = tfrecord.decode(record)
        expected = photos[index % 2].astype(np.float32)
        assert image.shape == expected.shape
        assert np.mean(np.abs(image.numpy().astype(np.float32) - expected)) < 2.0


def test_rates_ratio_and_cpu_bound():
    seconds = {'pipeline': [0.1, 0.1, 0.3], 'step_from_pipeline': [1.0, 0.8, 2.0],
               'step_from_memory': [0.5, 0.4, 0.9]}
    result = input_pipeline.summarize(seconds, batch_size=8)
    assert result['images_per_sec'] == pytest.approx(
        {'pipeline': 80.0, 'step_from_pipeline': 8.0, 'step_from_memory': 16.0})
    assert result['ratio'] == pytest.approx(0.5)
    assert result['cpu_bound'] == pytest.approx(1 / (1 + 16.0 / 80.0))
