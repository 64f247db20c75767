"""`python -m slimnorm.legacy`: unedited tf-slim scripts run on TF 2.21.

The script (tests/data/slim_legacy_classifier.py) is research/slim-shaped
and never imports slimnorm: JPEG TFRecords through tfexample_decoder,
slim.conv2d + slim.batch_norm arg scopes, slim.learning.train, weight EMA
restored by slim.evaluation.evaluate_once.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from slimnorm.legacy import runner

from script_helpers import script_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "data", "slim_legacy_classifier.py")
STEPS = 60


def _legacy(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "slimnorm.legacy"] + [str(a) for a in args],
                          capture_output=True, text=True, env=script_env(), timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("legacy")
    train_dir = root / "train"
    result = _legacy(SCRIPT, "--dataset_dir=%s" % (root / "data"), "--train_dir=%s" % train_dir,
                     "--max_number_of_steps=%d" % STEPS)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), str(train_dir)


def test_script_trains_and_evaluates_through_slimnorm_legacy(trained):
    metrics, _ = trained
    # Dark vs bright images: trivially separable once BN's moving statistics are right;
    # with the moving averages left at 0/1 (updates not run) the eval collapses to 0.5.
    assert metrics["accuracy"] >= 0.9


def test_checkpoint_holds_moved_statistics_and_ema_shadows(trained):
    _, train_dir = trained
    checkpoint = tf.train.latest_checkpoint(train_dir)
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint)
    names = set(reader.get_variable_to_shape_map())
    for layer in ("conv1", "conv2"):
        assert {"%s/BatchNorm/%s" % (layer, v) for v in ("beta", "gamma", "moving_mean",
                                                          "moving_variance")} <= names
        assert "%s/weights/ExponentialMovingAverage" % layer in names
        assert not np.allclose(reader.get_tensor(layer + "/BatchNorm/moving_mean"), 0.0)
        assert not np.allclose(reader.get_tensor(layer + "/BatchNorm/moving_variance"), 1.0)
    assert reader.get_tensor("global_step") == STEPS


def test_usage_errors_exit_2():
    for args in ([], ["/nonexistent/train.py"], ["--bogus"], ["-m"]):
        result = _legacy(*args, timeout=60)
        assert result.returncode == 2, args
        assert "usage: python -m slimnorm.legacy" in result.stderr
    with pytest.raises(ValueError, match="'nope.py' is not a file"):
        runner.parse(["nope.py"])
    assert runner.parse(["-m", "pkg.mod", "--x=1"]) == ("module", "pkg.mod", ["--x=1"])


def test_script_exit_status_and_argv_pass_through(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys, tensorflow as tf, tf_slim as slim, slimnorm\n"
        "assert not tf.executing_eagerly()\n"
        "assert slim.batch_norm is slimnorm.batch_norm\n"
        "print(sys.argv[1:], __name__)\n"
        "sys.exit(3)\n")
    result = _legacy(script, "--a=1", "b", timeout=120)
    assert result.returncode == 3, result.stderr[-2000:]
    assert result.stdout.strip() == "['--a=1', 'b'] __main__"


def test_same_script_without_the_patch_fails_in_tf_slims_decoder(tmp_path):
    """The control: graph mode alone is not enough on TF 2.21."""
    code = ("import runpy, sys, tensorflow as tf\n"
            "tf.compat.v1.disable_eager_execution()\n"
            "sys.argv = ['s', '--dataset_dir=%s', '--train_dir=%s', '--num_samples=4']\n"
            "runpy.run_path(%r, run_name='__main__')\n"
            % (tmp_path / "data", tmp_path / "train", SCRIPT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=script_env(), timeout=300, cwd=ROOT)
    assert result.returncode != 0
    assert "has no attribute 'case'" in result.stderr
