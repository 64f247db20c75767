"""slimnorm's benchmark: normalisation ops and Inception V2 steps, as ratios.

    slimnorm bench norms              # full run: 7 min on the idle 2-core machine, longer under load
    slimnorm bench norms --quick      # reduced set, < 1 min
    slimnorm bench norms --skip-nets --reps 30 --out runs/ops.json

Everything runs in this one process, in graph mode with tf.compat.v1.Session,
after warm-up, with the cases compared timed in interleaved repetitions
(see slimnorm.bench.harness). Reported: median milliseconds, inter-quartile range and
the ratio to the baseline of the group (the median over rounds of the
per-round ratio; the ratio of the medians is in the JSON too): TF's fused batch norm
kernel for the ops (slimnorm.bench.ops), the same network with that kernel
called directly for Inception V2 (slimnorm.bench.networks). Quote ratios:
absolute times on a shared machine move by tens of percent.

Prints markdown tables on stdout, progress on stderr, and writes the JSON
(--out, default runs/bench-norms/bench.json).
"""

import datetime
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from slimnorm import precision  # noqa: E402
from slimnorm.bench import harness as bench_harness  # noqa: E402
from slimnorm.bench import networks as bench_nets  # noqa: E402
from slimnorm.bench import ops as bench_ops  # noqa: E402
from slimnorm.bench import report as bench_report  # noqa: E402
from slimnorm.cli.common import (  # noqa: E402
    ArgumentParser,
    add_mixed_precision_argument,
    float_at_least,
    int_at_least,
)
from slimnorm.cli.help_format import DefaultsFormatter  # noqa: E402

SHAPES = ([32, 56, 56, 192], [32, 28, 28, 256], [32, 14, 14, 576], [32, 7, 7, 1024],
          [32, 8, 8, 64])
QUICK_SHAPES = ([8, 14, 14, 64], [32, 8, 8, 64])
NET = {"batch": 8, "size": 224, "depth_multiplier": 1.0}
QUICK_NET = {"batch": 2, "size": 64, "depth_multiplier": 0.25}
QUICK_NET_KINDS = (bench_nets.BASELINE, "batch_norm")


def _progress(message):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def _session(graph, args):
    return tf.compat.v1.Session(
        graph=graph, config=precision.session_config(
            args.mixed_precision,
            bench_harness.session_config(args.intra_threads, args.inter_threads)))


def _row(result, **fields):
    """A JSON row: the statistics, the raw samples in ms, and `fields`."""
    row = {k: v for k, v in result.items() if k != "seconds"}
    row["samples_ms"] = [round(s * 1e3, 4) for s in result["seconds"]]
    row.update(fields)
    return row


def run_ops(args, shapes, modes):
    rows = []
    for shape in shapes:
        graph = tf.Graph()
        with graph.as_default():
            x, dy = bench_ops.inputs(shape)
            ops = {}
            for name, builder, case_modes, source in bench_ops.cases():
                for mode in modes:
                    if mode in case_modes:
                        ops[(mode, name)] = (bench_ops.build(builder, x, dy, mode,
                                                             "%s_%s" % (name, mode)), source)
            init = tf.compat.v1.global_variables_initializer()
        with _session(graph, args) as sess:
            sess.run(init)
            for mode in modes:
                names = [n for (m, n) in ops if m == mode]
                _progress("ops %s %s: %s" % (shape, mode, ", ".join(names)))
                runs = {n: sess.make_callable(ops[(mode, n)][0]) for n in names}
                results = bench_harness.measure(runs, args.reps, args.warmup,
                                                min_sample_s=args.min_sample_ms / 1e3,
                                                min_total_s=args.min_group_s)
                of_medians = bench_harness.ratio_of_medians(results, bench_ops.BASELINE)
                ratio = bench_harness.paired_ratios(results, bench_ops.BASELINE)
                for name in names:
                    rows.append(_row(results[name], shape=list(shape), mode=mode, case=name,
                                     source=ops[(mode, name)][1], ratio=ratio[name],
                                     ratio_of_medians=of_medians[name]))
                _progress("  " + ", ".join("%s %.3fx" % (n, ratio[n]) for n in names))
    return rows


def run_nets(args, net, kinds):
    rows = []
    for mode in bench_nets.MODES:
        runs, sessions = {}, []
        for kind in kinds:
            _progress("building Inception V2 %s %s (batch %d, %dpx)" % (
                kind, mode, net["batch"], net["size"]))
            graph = tf.Graph()
            with graph.as_default():
                op = bench_nets.build(kind, mode, net["batch"], net["size"],
                                      net["depth_multiplier"])
                init = tf.compat.v1.global_variables_initializer()
            sess = _session(graph, args)
            sess.run(init)
            sessions.append(sess)
            runs[kind] = sess.make_callable(op)
        _progress("timing Inception V2 %s: %d reps of %s" % (mode, args.net_reps, ", ".join(kinds)))
        results = bench_harness.measure(runs, args.net_reps, args.warmup)
        of_medians = bench_harness.ratio_of_medians(results, bench_nets.BASELINE)
        ratio = bench_harness.paired_ratios(results, bench_nets.BASELINE)
        for kind in kinds:
            source = bench_nets.group_norm_source() if kind == "group_norm" else (
                "tensorflow" if kind == bench_nets.BASELINE else "slimnorm")
            rows.append(_row(results[kind], mode=mode, case=kind, source=source,
                             ratio=ratio[kind], ratio_of_medians=of_medians[kind], **net))
        _progress("  " + ", ".join("%s %.3fx" % (k, ratio[k]) for k in kinds))
        for sess in sessions:
            sess.close()
    return rows


def environment(args):
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)"),
        "intra_op_threads": args.intra_threads,
        "inter_op_threads": args.inter_threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "quick": args.quick,
        "mixed_precision": args.mixed_precision,
        "cpu": precision.machine(),
        "reps": args.reps,
        "net_reps": args.net_reps,
    }


def parse_args(argv=None, prog=None):
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                            formatter_class=DefaultsFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small shapes, few reps, a tiny Inception V2 (< 1 min)")
    parser.add_argument("--out", default=os.path.join("runs", "bench-norms", "bench.json"),
                        help="JSON output path")
    parser.add_argument("--reps", type=int_at_least(1), help="op repetitions (default 25; quick 5)")
    parser.add_argument("--net-reps", type=int_at_least(1), help="network repetitions (default 25; quick 3)")
    parser.add_argument("--warmup", type=int_at_least(0), default=2, help="warm-up runs per case")
    parser.add_argument("--min-sample-ms", type=float_at_least(0), default=20.0,
                        help="repeat fast ops so one op sample lasts at least this long")
    parser.add_argument("--min-group-s", type=float_at_least(0), default=10.0,
                        help="add rounds until each op group was timed this long (quick: 1)")
    parser.add_argument("--intra-threads", type=int_at_least(0), default=0,
                        help="intra-op threads (0: TensorFlow's choice)")
    parser.add_argument("--inter-threads", type=int_at_least(0), default=0,
                        help="inter-op threads (0: TensorFlow's choice)")
    parser.add_argument("--shapes", help="op shapes, e.g. '32,28,28,256;32,8,8,64'")
    parser.add_argument("--modes", default=",".join(bench_ops.MODES),
                        help="op modes, comma-separated (default all)")
    parser.add_argument("--skip-ops", action="store_true")
    parser.add_argument("--skip-nets", action="store_true")
    add_mixed_precision_argument(parser, default="none")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 5 if args.quick else 25
    if args.net_reps is None:
        args.net_reps = 3 if args.quick else 25
    if args.quick:
        args.min_sample_ms = min(args.min_sample_ms, 5.0)
        args.min_group_s = min(args.min_group_s, 1.0)
    return args


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    if args.shapes:
        shapes = [[int(d) for d in s.split(",")] for s in args.shapes.split(";")]
    else:
        shapes = QUICK_SHAPES if args.quick else SHAPES
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(bench_ops.MODES))
    if unknown:
        raise SystemExit("--modes: unknown %s; accepted: %s" % (unknown, ", ".join(bench_ops.MODES)))
    started = time.time()
    op_rows = [] if args.skip_ops else run_ops(args, shapes, modes)
    net = QUICK_NET if args.quick else NET
    kinds = QUICK_NET_KINDS if args.quick else bench_nets.KINDS
    net_rows = [] if args.skip_nets else run_nets(args, net, kinds)
    goal_rows = bench_report.goals(op_rows, net_rows)
    result = {"environment": environment(args), "ops": op_rows, "nets": net_rows,
              "goals": goal_rows, "seconds": time.time() - started}
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(bench_report.ops_tables(op_rows))
    print(bench_report.nets_table(net_rows))
    print(bench_report.goals_table(goal_rows))
    _progress("done in %.0f s; JSON in %s" % (result["seconds"], args.out))


if __name__ == "__main__":
    main()
