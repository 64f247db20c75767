"""Run tf-slim's own bundled tests, from the installed wheel, in child pytest processes.

Used by tests/test_tf_slim_suite.py (patched, in CI) and, as a script, to
print the per-file table of passes without and with the patch:

    PYTHONPATH=. python tests/tf_slim_suite.py > docs/tf_slim_suite.md

The test files are never copied: each child runs pytest on the installed
tf_slim directory with tests/tf_slim_suite_plugin.py loaded (graph mode,
the patch, the exclusion list). The files are split into two shards run at
once, one per core, each with a wall-clock bound; a shard that overruns is
killed with its whole process group.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

import tf_slim_suite_plugin  # noqa: E402

SHARDS = 2
TIMEOUT_SECONDS = 1500
OUTCOMES = ("passed", "failed", "xfailed", "skipped")


def tf_slim_dir():
    import tf_slim
    return os.path.dirname(os.path.abspath(tf_slim.__file__))


def test_files(patch=True):
    """Relative paths of tf-slim's *_test.py files, minus the `ignore` entries when patched."""
    ignored = {pattern for kind, pattern, _ in tf_slim_suite_plugin.read_exclusions()
               if kind == "ignore"} if patch else set()
    base = tf_slim_dir()
    found = []
    for directory, _, names in os.walk(base):
        for name in names:
            if name.endswith("_test.py"):
                found.append(os.path.relpath(os.path.join(directory, name), base))
    return sorted(path for path in found if path not in ignored)


# Relative run time of the slowest files (the rest count 1), so that the two shards
# finish together; only the balance depends on these.
RELATIVE_COST = {
    "metrics/metric_ops_test.py": 28, "losses/metric_learning_test.py": 13,
    "nets/inception_v3_test.py": 12, "nets/resnet_v1_test.py": 9, "nets/inception_v2_test.py": 9,
    "layers/rev_block_lib_test.py": 7, "nets/resnet_v2_test.py": 5,
    "metrics/metric_ops_large_test.py": 4, "nets/inception_v1_test.py": 4,
    "nets/vgg_test.py": 2, "layers/layers_test.py": 2,
}


def shards(files, count=SHARDS):
    """Greedy split by RELATIVE_COST, costliest file first."""
    groups = [[] for _ in range(count)]
    costs = [0] * count
    for path in sorted(files, key=lambda p: (-RELATIVE_COST.get(p, 1), p)):
        cheapest = costs.index(min(costs))
        groups[cheapest].append(path)
        costs[cheapest] += RELATIVE_COST.get(path, 1)
    return [sorted(group) for group in groups if group]


def _env(patch, matches_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", SLIMNORM_TF_SLIM_PATCH="1" if patch else "0",
               SLIMNORM_TF_SLIM_MATCHES=matches_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, TESTS, env.get("PYTHONPATH")]))
    return env


def run(out_dir, patch=True, timeout=TIMEOUT_SECONDS):
    """Runs every shard at once; returns [{'junit', 'matches', 'log', 'returncode'}] per shard."""
    base = tf_slim_dir()
    started = []
    for index, group in enumerate(shards(test_files(patch))):
        stem = os.path.join(out_dir, "%s_%d" % ("patched" if patch else "unpatched", index))
        shard = {"junit": stem + ".xml", "matches": stem + ".json", "log": stem + ".log"}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "tf_slim_suite_plugin",
                   "-p", "no:cacheprovider", "--continue-on-collection-errors",
                   "--junitxml", shard["junit"]] + [os.path.join(base, path) for path in group]
        with open(shard["log"], "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=out_dir,
                                       env=_env(patch, shard["matches"]), start_new_session=True)
        started.append((shard, process))
    for shard, process in started:
        try:
            shard["returncode"] = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            shard["returncode"] = "timeout after %d s" % timeout
    return [shard for shard, _ in started]


def outcomes(junit_paths):
    """{test file relative to tf_slim: Counter of OUTCOMES}, and [(test id, message)] of failures."""
    per_file = collections.defaultdict(collections.Counter)
    failures = []
    for path in junit_paths:
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            # classname '<dirs>.tf_slim.layers.layers_test.ConvolutionTest'; a collection
            # error has an empty classname and the module path as its name.
            parts = (case.get("classname") or case.get("name", "")).split(".")
            start = parts.index("tf_slim") + 1 if "tf_slim" in parts else 0
            module = [p for p in parts[start:] if not p[:1].isupper()]
            test_file = "/".join(module) + ".py"
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                    failures.append(("%s::%s" % (".".join(parts[start:]), case.get("name")),
                                     (child.get("message") or "").splitlines()[:1]))
                elif child.tag == "skipped" and outcome == "passed":
                    outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
            per_file[test_file][outcome] += 1
    return per_file, failures


def matched_entries(shard_results):
    """{entry pattern: collected tests it matched, summed over shards}."""
    total = collections.Counter()
    for shard in shard_results:
        if os.path.exists(shard["matches"]):
            with open(shard["matches"], encoding="utf-8") as matches:
                total.update(json.load(matches))
    return total


def table(unpatched, patched):
    """Markdown: per file, passed/total unpatched and patched, and the patched xfails."""
    lines = ["| tf-slim test file | unpatched: pass / fail | patched: pass / fail / xfail | skipped |",
             "|---|---|---|---|"]
    totals = [collections.Counter(), collections.Counter()]
    for test_file in sorted(set(unpatched) | set(patched)):
        before, after = unpatched.get(test_file, {}), patched.get(test_file, {})
        totals[0].update(before)
        totals[1].update(after)
        lines.append("| %s | %d / %d | %d / %d / %d | %d |" % (
            test_file, before.get("passed", 0), before.get("failed", 0), after.get("passed", 0),
            after.get("failed", 0), after.get("xfailed", 0), after.get("skipped", 0)))
    lines.append("| **all** | **%d / %d** | **%d / %d / %d** | %d |" % (
        totals[0]["passed"], totals[0]["failed"], totals[1]["passed"], totals[1]["failed"],
        totals[1]["xfailed"], totals[1]["skipped"]))
    return "\n".join(lines)


def main():
    import tempfile
    out_dir = tempfile.mkdtemp(prefix="tf_slim_suite_")
    counts = []
    for patch in (False, True):
        shard_results = run(out_dir, patch=patch)
        counts.append(outcomes([s["junit"] for s in shard_results if os.path.exists(s["junit"])])[0])
    print(table(*counts))


if __name__ == "__main__":
    main()
