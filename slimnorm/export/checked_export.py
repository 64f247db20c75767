"""export_inference_graph's two halves: which network (before TensorFlow), and a checked write.

:func:`network_to_export` takes the network from the run_config.json beside
the checkpoint (`slimnorm.train.saved_run`): a flag left out takes the
run's value, a contradicting one is refused (ValueError, one line naming
both values); ``--export_image_size`` is the one legitimate difference (a
fully convolutional network served at another size). Without a
run_config.json the flags decide, with research/slim's defaults, and the
graph's variables are checked against the checkpoint's names and shapes
before anything is written.

:func:`write_frozen` and :func:`write_unfrozen` write through
`slimnorm.export.verify`: a temporary name, read back, one batch (the
run's own evaluation images when they can be read, else deterministic
random ones) compared with the logits of the checkpoint's graph, then the
rename.
"""
import dataclasses
import os

from slimnorm.export import names
from slimnorm.train import saved_run

# research/slim's export defaults (a checkpoint without run_config.json).
SLIM_DEFAULTS = dict(model_name='inception_v2', normalizer='batch', data_format='NHWC',
                     model_kwargs={}, num_channels=3, dataset_name='imagenet')
BATCH = 16  # images of the verification batch


@dataclasses.dataclass
class Network:
    """What build_inference_graph is given, and the run it came from (or None)."""
    model_name: str
    num_classes: int
    image_size: int
    num_channels: int
    normalizer: str
    data_format: str
    model_kwargs: dict
    run: saved_run.SavedRun = None

    @property
    def normalizer_arg(self):
        return None if self.normalizer == 'none' else self.normalizer


def _without_data_format(kwargs):
    return {k: v for k, v in (kwargs or {}).items() if k != 'data_format'}


def network_to_export(args):
    """The Network of the parsed export flags; ValueError for a contradiction."""
    run = saved_run.find(args.checkpoint_path)
    if run is None:
        return _from_flags(args)
    run.agree('model_name', args.model_name, 'model')
    run.agree('normalizer', args.normalizer)
    run.agree('data_format', args.data_format, run_value=run.data_format)
    if args.model_kwargs is not None:
        run.agree('model_kwargs', _without_data_format(args.model_kwargs), 'model_kwargs',
                  _without_data_format(run.model_kwargs))
    height, _, channels = run.input_shape
    run.agree('image_size', args.image_size, 'image size', height,
              otherwise='--export_image_size for another size (a fully convolutional network)')
    run.agree('num_channels', args.num_channels, 'channels', channels)
    run.agree('labels_offset', args.labels_offset)
    classes = run.num_classes
    if args.num_classes is not None:
        given = names.num_classes_for(None, args.num_classes, args.labels_offset or 0)
        run.agree('num_classes', given, 'classes', classes)
    if args.dataset_name is not None and args.dataset_name != run.dataset:
        given = names.num_classes_for(args.dataset_name, None, args.labels_offset or 0)
        if given != classes:
            raise ValueError(f'dataset_name={args.dataset_name!r} ({given} classes) contradicts '
                             f'{run.path}: dataset={run.dataset!r} ({classes} classes); '
                             f'accepted: {run.dataset!r} or no --dataset_name')
    return Network(run.model, classes, args.export_image_size or height, channels,
                   run.normalizer, run.data_format, _without_data_format(run.model_kwargs), run)


def _from_flags(args):
    value = {name: getattr(args, name) if getattr(args, name) is not None else default
             for name, default in SLIM_DEFAULTS.items()}
    if args.num_classes is not None:
        value['dataset_name'] = None
    kwargs = dict(value['model_kwargs'])
    data_format = kwargs.pop('data_format', value['data_format'])
    classes = names.num_classes_for(value['dataset_name'], args.num_classes,
                                    args.labels_offset or 0)
    return Network(value['model_name'], classes, args.export_image_size or args.image_size,
                   value['num_channels'], value['normalizer'], data_format, kwargs)


def build_graph(network, batch_size=None, is_training=False):
    from slimnorm.export import freeze
    return freeze.build_inference_graph(
        network.model_name, network.num_classes, image_size=network.image_size,
        batch_size=batch_size, num_channels=network.num_channels, is_training=is_training,
        normalizer=network.normalizer_arg, data_format=network.data_format,
        **network.model_kwargs)


def verification_images(network, graph, batch_size=None):
    """(images, what they are): the run's own when it is known and the sizes agree.

    The run's evaluation split as `slimnorm.export.run_data` reads it (the
    same images TFLite/ONNX exports are checked on); seeded random ones when
    the data cannot be read here (not installed, moved).
    """
    from slimnorm.data import datasets
    from slimnorm.export import run_data, verify
    shape = tuple(graph.get_tensor_by_name(names.INPUT_NAME + ':0').shape.as_list()[1:])
    count = batch_size or BATCH
    if network.run is not None and shape == tuple(network.run.input_shape):
        try:
            config = run_data.model_config(os.path.dirname(network.run.path))
            split = run_data.eval_split(config)
            images = run_data.images(config, split, count, (None,) + shape)
        except (datasets.DatasetUnavailableError, ValueError, OSError):
            images = None
        if images is not None and len(images) == count:
            return images, f'{count} {network.run.dataset} images of split {split!r}'
    return verify.random_images(shape, count), f'{count} random images'


def run_graph_def_file(path, images):
    """The logits of the frozen GraphDef file at ``path`` on ``images``."""
    from slimnorm.export import freeze
    return freeze.run_graph_def(freeze.read_graph_def(path), images)[0]


def freeze_checkpoint(graph, graph_def_fn, checkpoint, images):
    """(frozen GraphDef of ``graph`` restored from ``checkpoint``, its logits on ``images``).

    ``graph_def_fn(graph_def)`` may transform the frozen GraphDef (folding).
    """
    import tensorflow as tf

    from slimnorm.export import freeze
    with graph.as_default():
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
    with tf.compat.v1.Session(graph=graph) as sess:
        saver.restore(sess, checkpoint)
        reference = sess.run(names.LOGITS_NAME + ':0', {names.INPUT_NAME + ':0': images})
        graph_def = graph_def_fn(freeze.freeze_session(sess))
    return graph_def, reference


def write_frozen(graph, graph_def_fn, checkpoint, output_file, images, saved_model_dir=None,
                 tolerance=None):
    """Freezes ``graph`` restored from ``checkpoint``; writes the GraphDef (and SavedModel) checked.

    ``graph_def_fn(graph_def)`` may transform the frozen GraphDef (folding)
    before it is written; ``output_file`` None writes only the SavedModel.
    ``tolerance``: verify's (None: its default; a mixed-precision rewrite's is wider).
    Returns (graph_def, largest relative error).
    """
    import tensorflow as tf

    from slimnorm.export import freeze, saved_model, verify
    graph_def, reference = freeze_checkpoint(graph, graph_def_fn, checkpoint, images)
    error = 0.0
    tolerance = verify.DEFAULT_TOLERANCE if tolerance is None else tolerance
    if output_file:
        error = verify.write_verified(
            output_file, lambda path: freeze.write_graph_def(graph_def, path), run_graph_def_file,
            images, reference, tolerance)
    if saved_model_dir:
        def run_saved_model(path, batch):
            served = tf.saved_model.load(path).signatures[saved_model.SIGNATURE_KEY]
            return served(**{names.INPUT_NAME: tf.constant(batch)})[names.LOGITS_NAME].numpy()
        error = max(error, verify.write_verified(
            saved_model_dir, lambda path: saved_model.write_saved_model(graph_def, path),
            run_saved_model, images, reference, tolerance))
    return graph_def, error


def write_unfrozen(graph, output_file, images):
    """Writes the GraphDef with its variables, checked with their (seeded) initial values.

    The GraphDef is imported into a new graph, its variables' initializers
    are run there and the logits compared with those of ``graph`` after the
    same initializers: every op and seed made it into the file.
    """
    import tensorflow as tf

    from slimnorm.export import freeze, verify
    tf1 = tf.compat.v1
    with graph.as_default():
        initializers = [v.initializer.name for v in tf1.global_variables()]
    feed = {names.INPUT_NAME + ':0': images}
    with tf1.Session(graph=graph) as sess:
        sess.run(initializers)
        reference = sess.run(names.LOGITS_NAME + ':0', feed)

    def run(path, batch):
        imported = tf.Graph()
        with imported.as_default():
            tf1.import_graph_def(freeze.read_graph_def(path), name='')
        with tf1.Session(graph=imported) as sess:
            sess.run(initializers)
            return sess.run(names.LOGITS_NAME + ':0', {names.INPUT_NAME + ':0': batch})

    graph_def = graph.as_graph_def()
    return graph_def, verify.write_verified(
        output_file, lambda path: freeze.write_graph_def(graph_def, path), run, images,
        reference)
