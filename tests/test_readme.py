"""README.md cannot go stale: every command in it runs here, or is listed with where it runs.

Its bash blocks run in order in one scratch directory, through a `slimnorm` on PATH that is
this checkout's `python -m slimnorm` (what `. .venv/bin/activate` gives a reader); its python
blocks run as scripts. A command that is neither run here nor in ELSEWHERE fails the test.
"""
import json
import os
import re
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read()
BLOCKS = re.findall(r'^```(bash|python)\n(.*?)^```', README, re.M | re.S)

# Commands shown but not run here, and where they are exercised instead.
ELSEWHERE = {
    'make demo': 'creates .venv, then runs `slimnorm demo` (tests/test_demo.py: a tiny run)',
    'make test': 'what CI runs (.ci/run), this test included',
    '. .venv/bin/activate': 'shell set-up; here a `slimnorm` shim on PATH stands in for it',
    'tensorboard --logdir runs/digits': 'starts a server; tests/test_plot.py reads the same '
                                        "event files with TensorBoard's own reader",
}


def bash_commands():
    """Each command of the bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for kind, body in BLOCKS:
        if kind == 'bash':
            for line in body.replace('\\\n', ' ').split('\n'):
                command = re.sub(r'(^|\s+)#.*$', '', line).strip()
                if command:
                    commands.append(re.sub(r'\s+', ' ', command))
    return commands


def python_blocks():
    return [body for kind, body in BLOCKS if kind == 'python']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A scratch directory with this checkout's tests/ and a `slimnorm` on PATH."""
    work = tmp_path_factory.mktemp('readme')
    for folder in ('tests', 'scripts'):
        os.symlink(os.path.join(ROOT, folder), work / folder)
    (work / 'bin').mkdir()
    # `slimnorm` and `python` as the activated .venv gives them.
    for name, command in (('slimnorm', f'{sys.executable} -m slimnorm'),
                          ('python', sys.executable)):
        shim = work / 'bin' / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1',
               PATH=os.pathsep.join([str(shim.parent), os.environ['PATH']]),
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')])))
    return str(work), env


def test_readme_is_short_and_its_local_links_exist():
    assert len(README.splitlines()) <= 250
    for target in re.findall(r'\]\(([^)#]+)(?:#[^)]*)?\)', README):
        if '://' not in target:
            assert os.path.exists(os.path.join(ROOT, target)), target


def test_every_command_is_run_here_or_exercised_elsewhere():
    commands = bash_commands()
    assert len(commands) >= 10
    for command in commands:
        assert command.startswith(('slimnorm ', 'python scripts/')) or command in ELSEWHERE, (
            command)


RUN = [c for c in bash_commands() if c not in ELSEWHERE]


@pytest.mark.parametrize('command', RUN, ids=[c[:60] for c in RUN])
def test_command_runs(command, workdir):
    cwd, env = workdir
    result = subprocess.run(['bash', '-c', command], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
    words = command.split()
    if words[:2] == ['slimnorm', 'eval'] or 'eval_image_classifier.py' in command:
        metrics = json.loads(result.stdout.strip().splitlines()[-1])
        assert metrics['top1'] >= 0.95 and metrics['split'] == 'test', metrics
        if 'runs/qat' in command:
            assert metrics['quantized'] is True, metrics
    if words[:2] == ['slimnorm', 'legacy'] and 'slim_legacy_classifier.py' in command:
        assert json.loads(result.stdout.strip().splitlines()[-1])['accuracy'] >= 0.9
    if words[:2] == ['slimnorm', 'export']:
        output = os.path.join(cwd, words[words.index('--output_file') + 1])
        assert os.path.getsize(output) > 0 and 'checked' in result.stdout, result.stdout
        if '--saved_model_dir' in words:
            assert os.path.exists(os.path.join(cwd, 'runs/digits/saved_model/saved_model.pb'))
    if words[:2] == ['slimnorm', 'plot']:
        assert 'evaluations)' in result.stdout  # the eval curve is in it
        assert os.path.getsize(os.path.join(cwd, 'runs/digits/curves.png')) > 10000
    if words == ['slimnorm', '--help']:
        assert all(f'  {name} ' in result.stdout for name in ('train', 'eval', 'export', 'plot'))


@pytest.mark.parametrize('index', range(len(python_blocks())))
def test_python_block_runs(index, workdir):
    cwd, env = workdir
    result = subprocess.run([sys.executable, '-c', python_blocks()[index]], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
