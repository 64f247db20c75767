"""Precise BN of a training run: its network, its own data, an output that eval reads as a run.

    config, split = run_to_recompute('runs/x', given_fields)     # no TensorFlow
    shape, classes, batches = training_batches(config, split, 200, 32)
    prefix = write_run(build, shape, checkpoint, 'runs/x_precise/model.ckpt', batches,
                       facts)

The network and the data come from the run_config.json beside the
checkpoint (`slimnorm.train.saved_run`); a flag may only repeat them
(``--dataset_dir`` may point elsewhere: data move). Without one (a
research/slim checkpoint) the model and the data set must be given, and
the graph's variables are checked against the checkpoint's names and shapes
before anything runs. Any data set training reads is read the way training
reads it: the in-memory sets' training images (resized as training did),
TFRecords through the training preprocessing (`slimnorm.train.inputs`).

The output directory gets the new checkpoint, a ``checkpoint`` state file
naming it (relative, so the directory can move) and a run_config.json: the
source's, marked with ``precise_bn`` (eval's convergence warning knows the
statistics were recomputed). All of it is written in a temporary sibling
directory, read back, and renamed into place only when complete.
"""
import os

from slimnorm import checks
from slimnorm.choices import TFRECORD
from slimnorm.train import config as run_config
from slimnorm.train import saved_run

# Flags that must agree with the run (its data and network).
# (The image size is checked on its own: 0 in the run means the data's own size.)
AGREE_WITH_RUN = ('model', 'dataset', 'normalizer', 'model_kwargs', 'labels_offset',
                  'preprocessing_name')


def run_to_recompute(checkpoint_path, given, split=None):
    """(ModelConfig, split, SavedRun or None) of the flags ``given`` (ModelConfig fields)."""
    run = saved_run.find(checkpoint_path)
    if run is None:
        for name, flag in (('model', 'model_name'), ('dataset', 'dataset_name')):
            if given.get(name) is None:
                raise ValueError(f'{flag}=None and {checkpoint_path!r} has no '
                                 f'{run_config.RUN_CONFIG_FILE} beside it; accepted: --{flag} '
                                 'as the checkpoint was trained')
        fields = dict(given)
    else:
        saved_run.agree_all(run, given, AGREE_WITH_RUN)
        run.agree('train_image_size', given.get('image_size'), 'image_size',
                  run.fields.get('image_size') or run.input_shape[0])
        fields = dict(run.model_config_fields(), **given)
    split = split or (run.fields.get('split') if run else None) or 'train'
    config = run_config.ModelConfig(**fields).check()
    if config.dataset != TFRECORD:
        checks.one_of(split, run_config.SPLITS, 'dataset_split_name')
    return config, split, run


def training_batches(config, split, num_batches, batch_size, seed=0):
    """(image shape, classes, iterator of numpy image batches) as training reads them."""
    from slimnorm.export import precise_bn
    if config.dataset != TFRECORD:
        data = config.load_data()
        images, _ = data.split(split)
        return (data.image_shape, data.num_classes,
                precise_bn.batches(images, num_batches, batch_size, seed))
    import tensorflow as tf

    from slimnorm.train import inputs
    # A graph and session of their own: the consumer runs its batches in another graph.
    graph = tf.Graph()
    with graph.as_default():
        info = inputs.tfrecord_info(config, split)
        size, dataset = inputs.tfrecord_batches(config, info, batch_size, is_training=True,
                                                seed=seed)
        images = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()[0]

    def read():
        with tf.compat.v1.Session(graph=graph) as sess:
            for _ in range(num_batches):
                yield sess.run(images)

    return (size, size, saved_run.TFRECORD_CHANNELS), info.num_classes, read()


def check_output(output_prefix):
    """ValueError unless the output directory is new or empty (no run is overwritten)."""
    directory = os.path.dirname(os.path.abspath(output_prefix))
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise ValueError(f'output_path={output_prefix!r} is in {directory!r}, which exists and '
                         'is not empty; accepted: a prefix in a new or empty directory')
    return directory


def write_run(build_fn, image_shape, checkpoint, output_prefix, image_batches, facts,
              session_config=None):
    """precise_bn_checkpoint into a temporary directory, checked, then renamed into place.

    ``facts``: the run_config.json of the output (the source's fields and
    what precise BN did); ``session_config``: the Session's (mixed precision). Returns (output prefix, changes).
    """
    import numpy as np
    import tensorflow as tf

    from slimnorm.export import checkpoint_io, precise_bn, verify
    directory = check_output(output_prefix)
    basename = os.path.basename(output_prefix)
    temp = verify.temporary_path(directory)
    verify.discard(temp)
    try:
        written, changes = precise_bn.precise_bn_checkpoint(
            build_fn, image_shape, checkpoint, os.path.join(temp, basename), image_batches,
            session_config)
        # Relative: the state file must still name it after the rename.
        tf.compat.v1.train.update_checkpoint_state(temp, basename)
        run_config.write_run_config(temp, facts)
        back = checkpoint_io.read_checkpoint(tf.train.latest_checkpoint(temp))
        for name, (_, new) in changes.items():
            if not np.array_equal(back[name], new):
                raise ValueError(f'{name} read back from {written!r} differs from what was '
                                 'computed; nothing was written')
        verify.commit(temp, directory)
    except BaseException:
        verify.discard(temp)
        raise
    return os.path.join(directory, basename), changes


def source_facts(config, run, checkpoint, split, num_batches, batch_size, image_shape,
                 num_classes):
    """The output's run_config.json: the source's, and what precise BN did."""
    import dataclasses
    fields = dict(run.fields) if run is not None else dataclasses.asdict(config)
    shape = list(image_shape)
    if config.image_size:
        shape[:2] = [config.image_size, config.image_size]
    fields.update(input_shape=list(run.input_shape) if run is not None else shape,
                  num_classes=num_classes)
    fields[saved_run.PRECISE_BN_KEY] = {
        'source': checkpoint, 'split': split, 'num_batches': num_batches,
        'batch_size': batch_size}
    return fields
