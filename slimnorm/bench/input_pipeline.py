"""Is training from slim-format TFRecords as fast as training from memory?

    slimnorm bench input
    slimnorm bench input --steps 4 --rounds 1  # a quick look

In one process, three cases, each run in blocks of ``--steps`` consecutive
calls, the blocks of the cases alternating for ``--rounds`` rounds:

- ``pipeline``: the input pipeline alone: batches of
  `slimnorm.data.tfrecord.read_batches` (read, decode JPEG, Inception
  training preprocessing to 224x224, batch, prefetch), as the training loop
  builds it (`slimnorm.train.inputs.tfrecord_batches`);
- ``step_from_pipeline``: an Inception V2 training step (the loop's own
  `build_train_graph`: batch norm, momentum, summaries not fetched) fed by
  that pipeline in the graph;
- ``step_from_memory``: the same step fed a numpy batch through
  ``feed_dict``, as the in-memory data sets are.

The data are JPEG photos that ship with scikit-learn (``china.jpg`` and
``flower.jpg``, 427x640), written as slim-format records in a temporary
directory; nothing is downloaded. Rates are images per second from the
median time per call, leaving out the first ``--skip`` calls of each block
(start-up). Each block of a pipeline case restarts its iterator: a pipeline
left running fills its prefetch buffers while the other cases run, and the
first full run, without the restart, timed those batches as nearly free. The ratio reported is step_from_pipeline / step_from_memory
throughput; ``cpu_bound`` is what that ratio would be if every image's
decode and preprocessing took CPU time away from the step and nothing
overlapped: 1 / (1 + memory rate / pipeline rate).

Prints a table and writes JSON (--out).
"""
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from slimnorm.cli.common import ArgumentParser, int_at_least, quiet_tensorflow
from slimnorm.cli.help_format import DefaultsFormatter

SAMPLE_PHOTOS = ('china.jpg', 'flower.jpg')
NUM_CLASSES = 1000


def write_photo_records(directory, num_records):
    """``num_records`` slim records of scikit-learn's JPEG photos, and labels.txt."""
    import sklearn.datasets
    import tensorflow as tf

    from slimnorm.data import convert, tfrecord
    folder = os.path.join(os.path.dirname(sklearn.datasets.__file__), 'images')
    photos = []
    for name in SAMPLE_PHOTOS:
        with open(os.path.join(folder, name), 'rb') as f:
            encoded = f.read()
        height, width, _ = tf.io.extract_jpeg_shape(encoded).numpy()
        photos.append((encoded, int(height), int(width)))
    path = convert.shard_filename(directory, 'photos', 'train', 0, 1)
    with tf.io.TFRecordWriter(path) as writer:
        for index in range(num_records):
            encoded, height, width = photos[index % len(photos)]
            writer.write(convert.image_example(encoded, b'jpg', height, width,
                                               index % NUM_CLASSES).SerializeToString())
    tfrecord.write_label_file({i: f'class{i}' for i in range(NUM_CLASSES)}, directory)
    return photos


def _train_config(args, data_dir):
    from slimnorm.train.config import TrainConfig
    return TrainConfig(model='inception_v2', dataset='tfrecord', data_dir=data_dir,
                       image_size=args.image_size, batch_size=args.batch_size,
                       num_readers=args.num_readers,
                       num_preprocessing_threads=args.num_preprocessing_threads,
                       threads=args.threads, learning_rate=0.01, max_steps=10**6,
                       optimizer='momentum', lr_schedule='fixed', train_dir=data_dir).check()


def build_cases(args, data_dir):
    """{case: (session, callable, restart or None)}: the three cases, each in its own graph.

    ``restart`` re-initializes a case's pipeline, emptying the buffers it
    filled in the background while other cases ran.
    """
    import tensorflow as tf

    from slimnorm.train import inputs, loop
    tf1 = tf.compat.v1
    config = _train_config(args, data_dir)
    info = inputs.tfrecord_info(config, config.split)
    cases = {}

    def session(graph):
        with graph.as_default():
            init = tf1.global_variables_initializer()
        graph.finalize()
        sess = tf1.Session(graph=graph, config=config.session_config())
        sess.run(init)
        return sess

    def pipeline():
        """The training loop's pipeline, behind an iterator that can be restarted."""
        _, batches = inputs.tfrecord_batches(config, info, config.batch_size, True)
        iterator = tf1.data.make_initializable_iterator(batches)
        return iterator.initializer, iterator.get_next()

    graph = tf.Graph()
    with graph.as_default():
        restart, (images, labels) = pipeline()
    sess = session(graph)
    cases['pipeline'] = (sess, sess.make_callable([images, labels]),
                         sess.make_callable(restart))

    graph = tf.Graph()
    with graph.as_default():
        restart, (images, labels) = pipeline()
        model = loop.build_train_graph(config, images, labels, info.num_classes)
    sess = session(graph)
    cases['step_from_pipeline'] = (sess, sess.make_callable(model.train_op),
                                   sess.make_callable(restart))

    graph = tf.Graph()
    size = args.image_size
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, size, size, 3], name='images')
        labels = tf1.placeholder(tf.int64, [None], name='labels')
        model = loop.build_train_graph(config, images, labels, NUM_CLASSES)
    sess = session(graph)
    rng = np.random.RandomState(0)
    feed = {images: rng.uniform(-1, 1, (args.batch_size, size, size, 3)).astype(np.float32),
            labels: rng.randint(0, NUM_CLASSES, args.batch_size)}
    step = sess.make_callable(model.train_op, [images, labels])
    cases['step_from_memory'] = (sess, lambda: step(feed[images], feed[labels]), None)
    return cases


def measure(cases, steps, rounds, skip):
    """{case: per-call seconds after the first ``skip`` of each block}, in rotation.

    Each block of a pipeline case starts on a restarted pipeline, so batches
    prefetched while another case ran are not counted as free.
    """
    names = list(cases)
    seconds = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            _, run, restart = cases[name]
            if restart is not None:
                restart()
            for call in range(steps + skip):
                start = time.perf_counter()
                run()
                if call >= skip:
                    seconds[name].append(time.perf_counter() - start)
    return seconds


def summarize(seconds, batch_size):
    """Images/s per case, the ratio and the CPU-sharing bound."""
    rates = {name: batch_size / statistics.median(values) for name, values in seconds.items()}
    result = {'images_per_sec': rates,
              'ratio': rates['step_from_pipeline'] / rates['step_from_memory'],
              'cpu_bound': 1.0 / (1.0 + rates['step_from_memory'] / rates['pipeline'])}
    result['calls'] = {name: len(values) for name, values in seconds.items()}
    result['seconds'] = seconds  # every timed call, in order: blocks of --steps per round
    return result


def format_table(result, args):
    rates = result['images_per_sec']
    lines = [f'Inception V2 training step, {args.image_size}x{args.image_size}, batch '
             f'{args.batch_size}; {args.num_readers} readers, '
             f'{args.num_preprocessing_threads} preprocessing threads, session threads '
             f'{args.threads or "default"}; {os.cpu_count()} CPUs',
             '', '| case | images/s |', '|---|---|']
    for name in ('pipeline', 'step_from_pipeline', 'step_from_memory'):
        lines.append(f'| {name} | {rates[name]:.1f} |')
    lines += ['', f'ratio step_from_pipeline / step_from_memory: {result["ratio"]:.3f} '
              f'(goal >= 0.9)',
              f'cpu_bound 1 / (1 + memory rate / pipeline rate): {result["cpu_bound"]:.3f}']
    return '\n'.join(lines)


def build_parser(prog=None):
    parser = ArgumentParser(prog=prog or 'slimnorm bench input',
                            formatter_class=DefaultsFormatter, description=__doc__.split('\n')[0])
    add = parser.add_argument
    add('--batch_size', type=int_at_least(1), default=8)
    add('--image_size', type=int_at_least(1), default=224)
    add('--steps', type=int_at_least(1), default=10, help='timed calls per block')
    add('--skip', type=int_at_least(0), default=3, help='untimed calls at the start of each block')
    add('--rounds', type=int_at_least(1), default=3)
    add('--num_records', type=int_at_least(1), default=64)
    add('--num_readers', type=int_at_least(1), default=4)
    add('--num_preprocessing_threads', type=int_at_least(1), default=4)
    add('--threads', type=int_at_least(0), default=0, help='session intra/inter-op threads (0: TF)')
    add('--out', default=os.path.join('runs', 'bench-input', 'bench_input.json'))
    return parser


def main(argv=None, prog=None):
    args = build_parser(prog).parse_args(argv)
    quiet_tensorflow()
    data_dir = tempfile.mkdtemp(prefix='slimnorm_bench_input_')
    try:
        photos = write_photo_records(data_dir, args.num_records)
        cases = build_cases(args, data_dir)
        seconds = measure(cases, args.steps, args.rounds, args.skip)
        for sess, _, _ in cases.values():
            sess.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    result = summarize(seconds, args.batch_size)
    result['settings'] = dict(vars(args), photos=[f'{h}x{w}' for _, h, w in photos],
                              cpus=os.cpu_count())
    print(format_table(result, args))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2, sort_keys=True)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
