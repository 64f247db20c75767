"""What every console command shares: one-line errors, model flags, quiet logs.

TensorFlow-free at import: the commands parse and check their flags with this
and `slimnorm.train.config` before anything imports TensorFlow.
"""
import argparse
import copy
import json
import os

from slimnorm.choices import (
    INPUT_DATASETS,
    MIXED_PRECISIONS,
    MODELS,
    PREPROCESSINGS,
    TFRECORD,
    normalizer_names,
)

# ModelConfig fields set by flags of the same name (None: flag not given).
MODEL_FLAGS = ('model', 'dataset', 'data_dir', 'normalizer', 'image_size', 'threads',
               'preprocessing_name', 'labels_offset', 'num_readers',
               'num_preprocessing_threads', 'skip_corrupt_records', 'mixed_precision')


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help appends each option's default, unless its help already names it;
    the description is printed as written."""

    def _format_action(self, action):
        if action.help is None and action.option_strings and (
                action.default is not argparse.SUPPRESS):
            action = copy.copy(action)  # an option without help still shows its default
            action.help = 'default: %(default)s'
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ''
        if (action.default is argparse.SUPPRESS or not action.option_strings
                or 'default' in text.lower() or action.default is None and action.required):
            return text
        shown = "''" if action.default == '' else '%(default)s'
        return f'{text} (default: {shown})'.lstrip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``prog: error: message``, exit 2.

    No prefix matching (``--lr`` is an error, not ``--lr_schedule``), and
    ``--help`` shows every default.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)
        if kwargs.get('formatter_class') in (None, argparse.HelpFormatter,
                                             argparse.RawDescriptionHelpFormatter):
            kwargs['formatter_class'] = DefaultsHelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


TRUE_WORDS = ('true', 't', '1', 'yes', 'y')
FALSE_WORDS = ('false', 'f', '0', 'no', 'n')


def _bool_word(text):
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f'{text!r} is not a boolean; accepted: true or false')


def int_at_least(minimum):
    """argparse type: an integer >= `minimum`; anything else is one line naming what is accepted."""
    what = 'a positive integer' if minimum == 1 else f'an integer >= {minimum}'

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not {what}; accepted: integers >= {minimum}')
        return value
    parse.__name__ = what
    return parse


def float_at_least(minimum):
    """argparse type: a finite number >= `minimum`."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float('nan')
        if not value >= minimum or value == float('inf'):
            raise argparse.ArgumentTypeError(f'{text!r} is not accepted; accepted: '
                                             f'numbers >= {minimum:g}')
        return value
    parse.__name__ = f'number >= {minimum:g}'
    return parse


def add_bool_flag(parser, name, help, default=False):
    """A boolean flag as absl (research/slim) spells it: ``--name``,
    ``--name=true|false`` and ``--noname``."""
    parser.add_argument(f'--{name}', nargs='?', const=True, default=default, type=_bool_word,
                        metavar='BOOL', help=help)
    parser.add_argument(f'--no{name}', dest=name, action='store_false',
                        help=argparse.SUPPRESS)


def add_model_arguments(parser, image_size_flag='--image_size'):
    """The flags of :class:`slimnorm.train.config.ModelConfig`; None means unset.

    research/slim's spellings first; the older ones stay as aliases.
    ``image_size_flag``: slim's name of the size flag of the command
    (``--train_image_size`` or ``--eval_image_size``).
    """
    add = parser.add_argument
    add('--model_name', '--model', dest='model',
        help=f'network: {"|".join(MODELS)} (default small_convnet)')
    add('--dataset_name', '--dataset', dest='dataset',
        help=f'data: {"|".join(INPUT_DATASETS)} (default digits); {TFRECORD}: '
        'research/slim-format TFRecords and labels.txt in --dataset_dir')
    add('--dataset_dir', '--data_dir', dest='data_dir',
        help=f'the TFRecords of --dataset_name {TFRECORD}, the IDX files of mnist_dir, '
        'or another Fashion-MNIST location')
    add('--normalizer', help=f'{"|".join(normalizer_names())} (default batch)')
    add('--model_kwargs', help='JSON object of further network arguments, '
        'e.g. \'{"depths": [32, 64, 64, 128, 128]}\'')
    sizes = (image_size_flag, '--image_size') if image_size_flag != '--image_size' else (
        image_size_flag,)
    add(*sizes, dest='image_size', type=int,
        help='square image size: in-memory sets are resized to it (default: as '
        f'stored), {TFRECORD} preprocessing outputs it (default: the network\'s '
        'default size, 224 for inception_v2)')
    add('--threads', type=int, help='intra- and inter-op threads (default 0: '
        'TensorFlow decides)')
    add_mixed_precision_argument(parser)


def add_mixed_precision_argument(parser, default=None):
    """``--mixed_precision``, checked against this machine before TensorFlow loads."""
    parser.add_argument(
        '--mixed_precision', default=default, type=_mixed_precision,
        help=f'{"|".join(MIXED_PRECISIONS)} (default none): TensorFlow\'s bfloat16 rewrite '
        '(CPUs with avx512_bf16/amx_bf16) or float16 rewrite with loss scaling (GPUs); '
        'variables and checkpoints stay float32 (docs/precision.md)')


def _mixed_precision(text):
    from slimnorm import precision
    try:
        return precision.check(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_tfrecord_arguments(parser):
    """How ``--dataset_name tfrecord`` is read (research/slim's flags)."""
    add = parser.add_argument
    add('--preprocessing_name', help=f'{"|".join(PREPROCESSINGS)} (default: per '
        'model, as slim\'s preprocessing_factory: inception for inception_v2, light '
        'for small_convnet)')
    add('--labels_offset', type=int, help='subtracted from every label (1 for an '
        'ImageNet set whose label 0 is background, read by a 1000-class network)')
    add('--num_readers', type=int, help='TFRecord files read in parallel (default 4)')
    add('--num_preprocessing_threads', type=int,
        help='parallel decode + preprocessing calls (default 4)')
    add('--skip_corrupt_records', action='store_true', default=None,
        help='drop records that do not decode or whose label is out of range, and '
        'count them, instead of stopping')


def model_fields_from_args(args, defaults=None):
    """ModelConfig fields from parsed flags; unset flags take ``defaults``."""
    fields = dict(defaults or {})
    for name in MODEL_FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if args.model_kwargs is not None:
        try:
            fields['model_kwargs'] = json.loads(args.model_kwargs)
        except json.JSONDecodeError as err:
            raise ValueError(f'model_kwargs={args.model_kwargs!r} is not JSON ({err}); '
                             'accepted: a JSON object') from err
    return fields


def quiet_tensorflow():
    """Hides TensorFlow's Python deprecation chatter; for the command lines only.

    Needs no TensorFlow import (its Python logger is the standard 'tensorflow'
    one). Errors still show. The "`layer.apply` is deprecated" warning comes
    from tf-slim's layers.
    """
    import logging
    import warnings
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    warnings.filterwarnings('ignore', message='`layer.apply` is deprecated')
    logging.getLogger('tensorflow').setLevel(logging.ERROR)


def run_cli(parser, main, argv=None):
    """Parses ``argv``, returns ``main(args)``; a bad value -> one line, exit 2.

    A ValueError or TypeError is how `slimnorm.checks` (and the library,
    which uses it) reports a value outside what is accepted: the command line
    prints its message, not a traceback.
    """
    args = parser.parse_args(argv)
    try:
        return main(args)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
