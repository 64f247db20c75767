"""Shared by the script tests: one digits run, and the scripts run as subprocesses."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

from slimnorm.train.config import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, 'scripts')

# One short digits run serves every test that needs a trained checkpoint.
DIGITS_STEPS = 300
_DIGITS_RUN = {}


def digits_run():
    """(TrainConfig, train() result) of a 300-step digits run, trained once."""
    if not _DIGITS_RUN:
        from slimnorm.train import loop
        train_dir = tempfile.mkdtemp(prefix='slimnorm_digits_')
        atexit.register(shutil.rmtree, train_dir, True)
        config = TrainConfig(train_dir=train_dir, max_steps=DIGITS_STEPS, log_every_steps=100)
        _DIGITS_RUN['run'] = (config, loop.train(config, log=lambda line: None))
    return _DIGITS_RUN['run']


def script_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    return env


def script_command(name, *args):
    return [sys.executable, os.path.join(SCRIPTS, name)] + [str(a) for a in args]


def run_script(name, *args, timeout=120):
    """Runs scripts/<name> to completion; returns the CompletedProcess (text)."""
    return subprocess.run(script_command(name, *args), capture_output=True, text=True,
                          env=script_env(), timeout=timeout, cwd=ROOT)


def start_script(name, *args, stderr_path):
    """Starts scripts/<name>; returns the Popen (stdout piped as text).

    stderr goes to the file ``stderr_path``: TensorFlow's warnings could fill
    a pipe nobody reads and block the process.
    """
    with open(stderr_path, 'w') as stderr:
        return subprocess.Popen(script_command(name, *args), stdout=subprocess.PIPE,
                                stderr=stderr, text=True, env=script_env(), cwd=ROOT)
