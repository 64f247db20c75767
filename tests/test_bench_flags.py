"""Every benchmark and experiment refuses a bad count in one line, before any work."""
import argparse
import importlib

import pytest

from slimnorm.cli import common
from slimnorm.cli.main import BENCH, EXPERIMENTS

# (command, flags) -> the flag named in the one line.
BAD = [
    (('bench', 'deploy'), ['latency', '--rounds', '0'], '--rounds'),
    (('bench', 'deploy'), ['latency', '--threads', '0'], '--threads'),
    (('bench', 'deploy'), ['latency', '--num_classes', '0'], '--num_classes'),
    (('bench', 'deploy'), ['latency', '--image_size', '-3'], '--image_size'),
    (('bench', 'deploy'), ['latency', '--min_sample_s', 'nan'], '--min_sample_s'),
    (('bench', 'precision'), ['--rounds', '0'], '--rounds'),
    (('bench', 'precision'), ['--batches', '8', '0'], '--batches'),
    (('bench', 'norms'), ['--reps', '0'], '--reps'),
    (('bench', 'norms'), ['--min-sample-ms', '-1'], '--min-sample-ms'),
    (('bench', 'fold'), ['--rounds', '0'], '--rounds'),
    (('bench', 'config'), ['--steps', '0'], '--steps'),
    (('bench', 'sync-bn'), ['--reps', '0'], '--reps'),
    (('bench', 'input'), ['--batch_size', 'x'], '--batch_size'),
    (('exp', 'gn-batch-size'), ['--batch_sizes', '2', '0'], '--batch_sizes'),
    (('exp', 'renorm-warmup'), ['--steps', '0'], '--steps'),
    (('exp', 'sync-bn'), ['--seeds', '0'], '--seeds'),
    (('exp', 'precision-parity'), ['--inception_steps', '0'], '--inception_steps'),
    (('exp', 'bn-speedup'), ['--gaussian_stddev', '-0.1'], '--gaussian_stddev'),
]


def _main(group, name):
    table = BENCH if group == 'bench' else EXPERIMENTS
    module, function = table[name][1].split(':')
    return getattr(importlib.import_module(module), function)


@pytest.mark.parametrize('command, argv, flag', BAD,
                         ids=[' '.join(c) + ' ' + ' '.join(a) for c, a, _ in BAD])
def test_a_bad_count_is_one_line_naming_the_flag(command, argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main(*command)(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f'argument {flag}' in err[0] and 'accepted: ' in err[0], err
    assert 'Traceback' not in '\n'.join(err)


def test_the_types_accept_their_range_and_refuse_the_rest():
    at_least_one, non_negative = common.int_at_least(1), common.float_at_least(0)
    assert at_least_one('3') == 3 and non_negative('0') == 0.0
    for parse, text in ((at_least_one, '0'), (at_least_one, '2.5'), (non_negative, '-1e-9'),
                        (non_negative, 'inf'), (non_negative, 'nan')):
        with pytest.raises(argparse.ArgumentTypeError, match='accepted: '):
            parse(text)
