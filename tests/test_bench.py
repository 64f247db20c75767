"""Smoke test of `slimnorm bench norms --quick`: it runs and writes complete JSON.

No timing assertions: the numbers are only checked to be finite and positive.
"""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = ["-m", "slimnorm", "bench", "norms"]
STAT_KEYS = ("median_ms", "iqr_ms", "q1_ms", "q3_ms", "ratio")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, *BENCH, "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f), proc.stdout


def _finite_positive(row, key, allow_zero=False):
    value = row[key]
    assert isinstance(value, (int, float)) and math.isfinite(value), (key, row)
    assert value >= 0 if allow_zero else value > 0, (key, row)


def test_quick_json_has_every_op_case_and_mode(quick_result):
    result, _ = quick_result
    ops = result["ops"]
    modes = {r["mode"] for r in ops}
    assert modes == {"forward", "train", "inference"}
    cases = {r["case"] for r in ops}
    assert {"tf_fused", "tf_fused_updates", "batch_norm", "batch_norm_moments", "batch_renorm", "group_norm",
            "layer_norm", "instance_norm", "floor"} <= cases
    for row in ops:
        for key in STAT_KEYS:
            _finite_positive(row, key, allow_zero=key == "iqr_ms")
        assert row["reps"] >= 1 and len(row["shape"]) == 4


def test_quick_json_has_networks_and_goals(quick_result):
    result, _ = quick_result
    nets = result["nets"]
    assert {r["mode"] for r in nets} == {"train", "inference"}
    assert {"fused_kernel", "batch_norm"} <= {r["case"] for r in nets}
    for row in nets:
        for key in STAT_KEYS:
            _finite_positive(row, key, allow_zero=key == "iqr_ms")
    baseline = [r for r in nets if r["case"] == "fused_kernel"]
    assert all(r["ratio"] == 1.0 for r in baseline)
    assert result["goals"] and all(
        math.isfinite(g["worst"]) and g["worst"] > 0 for g in result["goals"])
    assert result["environment"]["tensorflow"].startswith("2.")


def test_quick_prints_markdown_tables(quick_result):
    _, stdout = quick_result
    assert "| case |" in stdout and "**goals**" in stdout
