"""slimnorm.data.convert: class folders / in-memory sets -> slim-format TFRecords."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.data import convert, datasets, tfrecord

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ('cat', 'dog', 'owl')


def _image(label, index):
    """A 6x6 image whose pixels encode its class and index."""
    image = np.zeros((6, 6, 3), np.uint8)
    image[..., 0], image[..., 1] = 40 * label + 10, 10 * index + 5
    image[..., 2] = np.arange(6) * 30
    return image


@pytest.fixture
def image_dir(tmp_path):
    root = tmp_path / 'photos'
    for label, name in enumerate(CLASSES):
        os.makedirs(root / name)
        for index in range(6):
            with open(root / name / f'{index}.png', 'wb') as f:
                f.write(tf.io.encode_png(_image(label, index)).numpy())
    (root / 'dog' / 'notes.txt').write_text('not an image')
    return str(root)


def _read(directory, split, channels=3, size=None):
    info = tfrecord.find_dataset(directory, split)
    dataset = tfrecord.read_batches(info, batch_size=64, image_size=size or 6,
                                    preprocessing_name='light', is_training=False,
                                    channels=channels)
    images, labels = zip(*[(i.numpy(), label.numpy()) for i, label in dataset])
    pixels = np.round((np.concatenate(images) + 1) / 2 * 255).astype(np.uint8)
    return info, pixels, np.concatenate(labels)


def test_image_folder_round_trip(image_dir, tmp_path):
    out = str(tmp_path / 'records')
    log = io.StringIO()
    counts = convert.convert_image_folder(image_dir, out, 'photos', num_shards=2,
                                          validation_fraction=0.25, seed=3, out=log)
    assert counts == {'validation': 4, 'train': 14}
    assert '>> train: image 14/14, shard 2/2' in log.getvalue()
    assert sorted(os.listdir(out)) == ['labels.txt'] + [
        'photos_%s_%05d-of-00002.tfrecord' % (split, shard)
        for split in ('train', 'validation') for shard in range(2)]
    seen = set()
    for split in ('train', 'validation'):
        info, images, labels = _read(out, split)
        assert info.class_names == dict(enumerate(CLASSES)) and info.num_classes == 3
        for image, label in zip(images, labels):
            # The pixels say which file the record came from.
            original_label, index = (image[0, 0, 0] - 10) // 40, (image[0, 0, 1] - 5) // 10
            assert original_label == label
            np.testing.assert_array_equal(image, _image(label, index))
            seen.add((split, int(label), int(index)))
    assert len(seen) == 18 and len({key[1:] for key in seen}) == 18


def test_image_folder_split_is_fixed_by_the_seed(image_dir, tmp_path):
    def validation(seed, name):
        out = str(tmp_path / name)
        convert.convert_image_folder(image_dir, out, 'p', 1, 0.25, seed, out=io.StringIO())
        return _read(out, 'validation')[1].tolist()

    first = validation(5, 'a')
    assert validation(5, 'b') == first
    assert validation(6, 'c') != first


def test_digits_round_trip_keeps_the_split_and_pixels(tmp_path):
    out = str(tmp_path / 'digits')
    counts = convert.convert_dataset('digits', out, num_shards=2, out=io.StringIO())
    digits = datasets.load('digits')
    assert counts == {'train': len(digits.train_labels), 'test': len(digits.test_labels)}
    info, images, labels = _read(out, 'test', channels=1, size=8)
    assert info.num_classes == 10
    # Two shards written in order: file order is the loader's order.
    np.testing.assert_array_equal(labels, digits.test_labels)
    np.testing.assert_array_equal(images, np.round(digits.test_images * 255).astype(np.uint8))


def test_bad_image_and_existing_output_are_named(image_dir, tmp_path):
    with open(os.path.join(image_dir, 'owl', 'broken.jpg'), 'wb') as f:
        f.write(b'GIF89a not really')
    with pytest.raises(ValueError, match='(?=.*broken.jpg)(?=.*neither JPEG nor PNG)'):
        convert.convert_image_folder(image_dir, str(tmp_path / 'o'), 'p', out=io.StringIO())
    assert not os.path.exists(tmp_path / 'o')  # named before anything is written
    os.remove(os.path.join(image_dir, 'owl', 'broken.jpg'))
    convert.convert_image_folder(image_dir, str(tmp_path / 'o'), 'p', out=io.StringIO())
    with pytest.raises(ValueError, match='(?=.*already holds)(?=.*labels.txt)'):
        convert.convert_image_folder(image_dir, str(tmp_path / 'o'), 'p', out=io.StringIO())
    with pytest.raises(ValueError, match='image_dir'):
        convert.convert_image_folder(str(tmp_path / 'none'), str(tmp_path / 'q'), 'p')


@pytest.mark.parametrize('argv, message', [
    (['--from_dataset', 'cifar'], 'from_dataset'),
    (['--image_dir', 'x', '--validation_fraction', '1.5'], 'validation_fraction=1.5'),
    (['--from_dataset', 'digits', '--validation_fraction', '0.1'], 'validation_fraction'),
    (['--image_dir', 'x', '--num_shards', '0'], 'num_shards'),
    (['--image_dir', 'x', '--from_dataset', 'digits'], 'not allowed with'),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        convert.main(['--dataset_dir', str(tmp_path)] + argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and message in err and err.count('\n') == 1


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize('out_class', [io.StringIO, _Terminal])
def test_progress_rewrites_in_place_only_on_a_terminal(tmp_path, out_class):
    out = out_class()
    convert.write_split([tf.train.Example] * 250, str(tmp_path), 'toy', 'train', 3, out=out)
    text = out.getvalue()
    if out_class is _Terminal:  # every 2 images (1 %)
        assert text.count('\r') == 125 and text.endswith('image 250/250, shard 3/3\n')
    else:  # one line per shard: 84 + 84 + 82 images
        assert '\r' not in text and text.splitlines() == [
            '>> train: image 84/250, shard 1/3', '>> train: image 168/250, shard 2/3',
            '>> train: image 250/250, shard 3/3']
    assert len(os.listdir(tmp_path)) == 3


def test_script_writes_from_a_folder(image_dir, tmp_path):
    out = str(tmp_path / 'cli')
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'scripts', 'build_tfrecords.py'),
         '--image_dir', image_dir, '--dataset_dir', out, '--num_shards', '1'],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'wrote 2 validation, 16 train images' in result.stdout
    assert os.path.exists(os.path.join(out, 'photos_train_00000-of-00001.tfrecord'))


def test_flags_are_checked_before_tensorflow_loads(tmp_path):
    code = ("import sys\nfrom slimnorm.data import convert\n"
            "try:\n    convert.main(['--dataset_dir', 'x', '--image_dir', 'y', '--seed', '-1'])\n"
            "except SystemExit as exit:\n    print(exit.code, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.stdout.strip() == '2 False', result.stderr[-2000:]
    assert result.stderr.startswith('slimnorm build-tfrecords: error: seed')
