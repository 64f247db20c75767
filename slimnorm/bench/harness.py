"""Timing harness of the benchmark (`slimnorm bench norms`): interleaved repetitions, medians, IQR.

The machine this runs on is shared and noisy, so absolute times drift by tens
of percent over minutes. What stays comparable is a ratio of two cases timed
at the same moments: every repetition runs each case once, round-robin, in a
rotating order (so no case is always first after the others warmed caches),
and the statistics are medians and inter-quartile ranges over repetitions.
Ratios are medians of per-round ratios (`paired_ratio`); the ratio of the
two medians is kept alongside.

A case is a zero-argument callable, typically `Session.make_callable(op)`.
"""

import math
import time

import tensorflow as tf


def session_config(intra_threads=0, inter_threads=0):
    """A ConfigProto; 0 threads means what TensorFlow picks (the core count)."""
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=intra_threads,
        inter_op_parallelism_threads=inter_threads)


def quantile(sorted_values, q):
    """Linear-interpolation quantile of an already sorted list."""
    position = (len(sorted_values) - 1) * q
    low = int(math.floor(position))
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(seconds):
    """{'median_ms', 'iqr_ms', 'q1_ms', 'q3_ms', 'reps'} of per-run times."""
    values = sorted(s * 1e3 for s in seconds)
    q1, median, q3 = (quantile(values, q) for q in (0.25, 0.5, 0.75))
    return {"median_ms": median, "iqr_ms": q3 - q1, "q1_ms": q1, "q3_ms": q3,
            "reps": len(values)}


def _time_once(run, inner):
    start = time.perf_counter()
    for _ in range(inner):
        run()
    return (time.perf_counter() - start) / inner


def calls_per_sample(runs, min_sample_s):
    """How many calls make one sample last about `min_sample_s`.

    Timed once on the fastest case after warm-up; one value for all cases of
    a group, so they are sampled alike. Fast kernels (~0.1 ms) would
    otherwise be timed at the resolution of the scheduler's noise.
    """
    fastest = min(_time_once(run, 1) for run in runs.values())
    return max(1, int(math.ceil(min_sample_s / max(fastest, 1e-6))))


def measure(runs, reps, warmup=2, min_sample_s=0.0, min_total_s=0.0):
    """Times every case of `runs` ({name: callable}) interleaved.

    At least `reps` rounds, more if needed for the group to last about
    `min_total_s` (fast groups would otherwise be over within one burst of
    another process's load). Returns {name: summarize(...)}, plus
    'calls_per_sample' in each entry and 'seconds', the per-call time of each
    round, in round order (for paired_ratios).
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    inner = calls_per_sample(runs, min_sample_s) if min_sample_s > 0 else 1
    seconds = {name: [] for name in names}
    rep, started = 0, time.perf_counter()
    while rep < reps or (rep >= 1 and time.perf_counter() - started < min_total_s):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(_time_once(runs[name], inner))
        rep += 1
    results = {}
    for name in names:
        results[name] = summarize(seconds[name])
        results[name]["calls_per_sample"] = inner
        results[name]["seconds"] = seconds[name]
    return results


def ratio_of_medians(results, baseline):
    """Median of `name` / median of `baseline`, for every case."""
    base = results[baseline]["median_ms"]
    return {name: r["median_ms"] / base for name, r in results.items()}


def paired_ratio(samples, baseline_samples):
    """Median over rounds of sample / baseline sample of the same round.

    The ratio the benchmark reports. On a shared machine, load comes and goes
    over seconds; both samples of a pair saw the same second, so the ratio of
    a pair is much steadier than either time, and the median over rounds
    discards the rounds a burst of load hit one side of.
    """
    return quantile(sorted(t / b for t, b in zip(samples, baseline_samples)), 0.5)


def paired_ratios(results, baseline):
    base = results[baseline]["seconds"]
    return {name: paired_ratio(r["seconds"], base) for name, r in results.items()}
