"""The sync-BN benchmark: its collective counts, and a 1-round quick run that writes JSON.

The counts are checked against the layers of the graph (one forward [3, C]
float64 and one backward [2, C] float32 all-reduce per batch-norm layer);
no timing assertions.
"""
import json
import math

import tensorflow as tf

from slimnorm.bench import sync_bn_bench


def test_collectives_per_step_match_the_batch_norm_layers():
    settings = sync_bn_bench.QUICK
    with tf.Graph().as_default() as graph:
        sync_bn_bench.build_step("sync", settings["batch_per_replica"], settings["image_size"],
                                 settings["depth_multiplier"])
        channels = [v.shape[0] for v in tf.compat.v1.global_variables()
                    if v.op.name.endswith("BatchNorm/moving_mean")]
    counted = sync_bn_bench.collectives_per_step(graph)
    assert len(channels) > 50
    assert counted["forward"] == counted["backward"] == len(channels)
    assert counted["all_reduces_per_replica"] == 2 * len(channels)
    assert counted["all_reduce_ops_in_graph"] == 2 * sync_bn_bench.REPLICAS * len(channels)
    assert counted["bytes_per_replica"] == sum(3 * c * 8 + 2 * c * 4 for c in channels)


def test_quick_run_writes_its_json(tmp_path):
    out = tmp_path / "sync_bn_bench.json"
    assert sync_bn_bench.main(["--quick", "--reps", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for value in list(result["median_step_ms"].values()) + [result["sync_over_local"]]:
        assert math.isfinite(value) and value > 0
    assert result["collectives"]["all_reduces_per_replica"] > 0
    assert result["collectives_local"] == 0
