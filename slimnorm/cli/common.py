"""What every console command shares: one-line errors, model flags, quiet logs.

TensorFlow-free at import: the commands parse and check their flags with this
and `slimnorm.train.config` before anything imports TensorFlow.
"""
import argparse
import json
import os

from slimnorm.choices import DATASETS, MODELS, normalizer_names


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line: ``prog: error: message``, exit 2."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def add_model_arguments(parser):
    """The flags of :class:`slimnorm.train.config.ModelConfig`; None means unset."""
    add = parser.add_argument
    add('--model', help=f'network: {"|".join(MODELS)} (default small_convnet)')
    add('--dataset', help=f'data: {"|".join(DATASETS)} (default digits)')
    add('--data_dir', help='directory of MNIST-format IDX files (mnist_dir), '
        'or another Fashion-MNIST location')
    add('--normalizer', help=f'{"|".join(normalizer_names())} (default batch)')
    add('--model_kwargs', help='JSON object of further network arguments, '
        'e.g. \'{"depths": [32, 64, 64, 128, 128]}\'')
    add('--image_size', type=int, help='resize images to this square size '
        '(default: as stored)')
    add('--threads', type=int, help='intra- and inter-op threads (default 0: '
        'TensorFlow decides)')


def model_fields_from_args(args, defaults=None):
    """ModelConfig fields from parsed flags; unset flags take ``defaults``."""
    fields = dict(defaults or {})
    for name in ('model', 'dataset', 'data_dir', 'normalizer', 'image_size', 'threads'):
        value = getattr(args, name)
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
