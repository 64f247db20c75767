"""`slimnorm plot RUN`: a PNG of a run's training loss and eval accuracy curves.

For people without TensorBoard (`tensorboard --logdir RUN` shows the same
scalars and more). It reads the event files `slimnorm train` writes in RUN
(every --log_every_steps: losses/total_loss, losses/cross_entropy,
accuracy/train_batch) and those `slimnorm eval --watch` writes in RUN/eval
(eval/top1, eval/top5), and draws two panels: loss against step, accuracy
against step. The PNG is written to a temporary name, read back, then
renamed, so a failure leaves no partial file.
"""
import glob
import os
import sys

from slimnorm.cli import common
from slimnorm.cli.help_format import DefaultsFormatter

LOSS_TAGS = ('losses/total_loss', 'losses/cross_entropy')
ACCURACY_TAGS = ('eval/top1', 'accuracy/train_batch')
DEFAULT_OUTPUT = 'curves.png'


def event_files(directory):
    """The TensorFlow event files directly in ``directory``, oldest first."""
    return sorted(glob.glob(os.path.join(directory, 'events.out.tfevents.*')))


def read_scalars(run_dir):
    """{tag: [(step, value), ...] sorted by step} of RUN's and RUN/eval's event files.

    A step logged twice (a resumed run repeats the steps after its last
    checkpoint) keeps the value written last.
    """
    import tensorflow as tf

    by_tag = {}
    for directory in (run_dir, os.path.join(run_dir, 'eval')):
        for path in event_files(directory):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.HasField('simple_value'):
                        by_tag.setdefault(value.tag, {})[int(event.step)] = value.simple_value
    return {tag: sorted(points.items()) for tag, points in by_tag.items()}


def draw(scalars, title, path):
    """Draws the loss and accuracy panels of ``scalars`` into the PNG ``path``."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for axes, tags, label in ((loss_axes, LOSS_TAGS, 'loss'),
                              (accuracy_axes, ACCURACY_TAGS, 'accuracy')):
        for tag in tags:
            if tag in scalars:
                steps, values = zip(*scalars[tag])
                axes.plot(steps, values, marker='o' if len(steps) < 30 else None,
                          label=tag, alpha=1.0 if tag.startswith(('eval', 'losses/total')) else 0.5)
        axes.set_xlabel('step')
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format='png', dpi=100)
    plt.close(figure)


def write_png(scalars, title, output):
    """Draws to a temporary name beside ``output``, checks the image, renames it."""
    import matplotlib.image

    temporary = f'{output}.tmp-{os.getpid()}'
    try:
        draw(scalars, title, temporary)
        height, width = matplotlib.image.imread(temporary, format='png').shape[:2]
        if height < 100 or width < 100:
            raise OSError(f'{temporary} holds a {width}x{height} image')
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def build_parser(prog='slimnorm plot'):
    parser = common.ArgumentParser(prog=prog, description=__doc__.split('\n')[0],
                                   formatter_class=DefaultsFormatter)
    parser.add_argument('run_dir', help='the --train_dir of `slimnorm train`')
    parser.add_argument('--output', help=f'the PNG to write (default RUN/{DEFAULT_OUTPUT})')
    return parser


def _run(args):
    if not event_files(args.run_dir):
        raise ValueError(f'run_dir={args.run_dir!r} holds no TensorFlow event files; '
                         'accepted: the --train_dir of a `slimnorm train` run')
    output = args.output or os.path.join(args.run_dir, DEFAULT_OUTPUT)
    if not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise ValueError(f'output={output!r}: its directory does not exist')
    common.quiet_tensorflow()
    scalars = read_scalars(args.run_dir)
    if not any(tag in scalars for tag in LOSS_TAGS):
        print(f'{args.run_dir}: the event files hold no training loss ({LOSS_TAGS[0]})',
              file=sys.stderr)
        return 1
    if 'eval/top1' not in scalars:
        print(f'no eval accuracy in {os.path.join(args.run_dir, "eval")}: `slimnorm eval '
              f'--checkpoint_path {args.run_dir} --watch` writes it; plotting the '
              'training curves only')
    write_png(scalars, os.path.basename(os.path.normpath(args.run_dir)), output)
    steps = scalars[LOSS_TAGS[0]] if LOSS_TAGS[0] in scalars else scalars[LOSS_TAGS[1]]
    print(f'wrote {output} (steps {steps[0][0]}-{steps[-1][0]}'
          + (f', {len(scalars["eval/top1"])} evaluations)' if 'eval/top1' in scalars else ')'))
    return 0


def main(argv=None, prog='slimnorm plot'):
    """``slimnorm plot RUN``: returns the exit status."""
    return common.run_cli(build_parser(prog), _run, argv)
