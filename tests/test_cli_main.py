"""The `slimnorm` command (slimnorm/cli/main.py): one listing, every subcommand reachable."""
import contextlib
import io
import os
import subprocess
import sys
import time

import pytest

from slimnorm.cli import main as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _subcommands(table=cli.COMMANDS, prefix=()):
    for name, (_, target) in table.items():
        if isinstance(target, dict):
            yield from _subcommands(target, prefix + (name,))
        else:
            yield prefix + (name,), target


SUBCOMMANDS = dict(_subcommands())
# legacy: its flags are the script's; caffe-import: every flag is required or unset.
NO_DEFAULTS = {('legacy',), ('caffe-import',)}
# Subcommands whose flags belong to their modes: each mode's --help shows the defaults.
MODES = {('bench', 'deploy'): ('latency', 'accuracy')}


def _run(*args, **env):
    return subprocess.run([sys.executable, '-m', 'slimnorm', *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, **env))


def test_help_lists_every_command_without_tensorflow():
    code = ('import sys, time\n'
            'start = time.perf_counter()\n'
            'from slimnorm.cli.main import main\n'
            'code = main(["--help"])\n'
            'print("exit", code, "tensorflow" in sys.modules, time.perf_counter() - start)\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    *listing, last = result.stdout.strip().split('\n')
    exit_word, code, loaded, seconds = last.split()
    assert (code, loaded) == ('0', 'False'), result.stderr[-2000:]
    assert float(seconds) < 0.5  # imports included; measured ~0.01 s
    assert result.stderr == ''
    for name in cli.COMMANDS:
        assert any(line.split()[:1] == [name] for line in listing), name


def test_python_dash_m_slimnorm_prints_the_listing_and_no_log():
    start = time.perf_counter()
    result = _run('--help', TF_CPP_MIN_LOG_LEVEL='0')
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and result.stderr == ''
    assert result.stdout.startswith('usage: slimnorm <command>')
    assert elapsed < 10  # interpreter start-up on a loaded machine; no TensorFlow


def test_groups_list_their_subcommands():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(['bench']) == 2  # a group without a subcommand: usage error
    assert all(f'  {name} ' in out.getvalue() for name in cli.BENCH)


def test_unknown_command_is_one_line_exit_2():
    result = _run('bench', 'nope')
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr == ("slimnorm bench: error: unknown command 'nope'; accepted: "
                             + ', '.join(cli.BENCH) + ' (see slimnorm bench --help)\n')


def test_a_subcommand_whose_module_is_missing_says_so_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(cli.BENCH, 'precision', ('x', 'slimnorm.bench.no_such_module:main'))
    assert cli.main(['bench', 'precision', '--quick']) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('slimnorm bench precision: not available')
    assert 'slimnorm.bench.no_such_module' in err


@pytest.mark.parametrize('words', sorted(SUBCOMMANDS), ids=' '.join)
def test_every_subcommand_help_names_the_command_and_shows_defaults(words, capsys):
    module = SUBCOMMANDS[words].split(':')[0]
    if cli.load(SUBCOMMANDS[words]) is None:
        pytest.skip(f'{module} is not in this checkout')
    with pytest.raises(SystemExit) as exit:
        code = cli.main([*words, '--help'])
        raise SystemExit(code)  # the legacy runner returns instead of exiting
    out = capsys.readouterr().out
    assert exit.value.code == 0
    assert f'usage: slimnorm {" ".join(words)}' in out
    if words not in NO_DEFAULTS and words not in MODES:
        assert 'default' in out, out
    for mode in MODES.get(words, ()):
        with pytest.raises(SystemExit) as exit:
            cli.main([*words, mode, '--help'])
        assert exit.value.code == 0 and 'default' in capsys.readouterr().out
    assert '(default: docs' not in out  # results go to runs/ unless --out/--out_dir ask
    if words != ('legacy',):
        description = out.split('\n\n')[1].strip()
        assert description.endswith(('.', '?', ')')), description  # not cut mid-sentence


def test_bench_help_prints_no_tensorflow_start_up_log():
    result = _run('bench', 'fold', '--help', TF_CPP_MIN_LOG_LEVEL='2')
    assert result.returncode == 0 and result.stderr == '', result.stderr
    assert result.stdout.startswith('usage: slimnorm bench fold')


@pytest.mark.parametrize('level, line, hidden', [
    (2, 'WARNING: All log messages before absl::InitializeLog() is called are written '
        'to STDERR\n', True),
    (2, 'I0000 00:00:1796630435.530530    9629 port.cc:153] oneDNN custom operations '
        'are on.\n', True),
    (2, 'W0000 00:00:1796630435.530530    9629 cpu.cc:12] a warning\n', True),
    (1, 'W0000 00:00:1796630435.530530    9629 cpu.cc:12] a warning\n', False),
    (2, 'E0000 00:00:1796630435.530530    9629 cpu.cc:12] an error\n', False),
    (0, 'I0000 00:00:1796630435.530530    9629 port.cc:153] info\n', False),
    (2, 'Traceback (most recent call last):\n', False),
])
def test_only_lines_below_the_log_level_are_dropped(level, line, hidden):
    assert cli._below_log_level(line, level) is hidden


@pytest.mark.parametrize('words', [[], ['legacy']])
def test_a_reader_that_stops_early_gets_no_traceback(words):
    # `slimnorm legacy --help | head -2`: the reader is gone before the help is written.
    proc = subprocess.Popen([sys.executable, '-m', 'slimnorm'] + words + ['--help'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    try:
        err = proc.communicate(timeout=120)[1].decode()
    finally:
        proc.kill()
    assert 'Traceback' not in err and 'BrokenPipeError' not in err, err
