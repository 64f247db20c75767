"""Markdown tables and goal checks of the benchmark's results (`slimnorm bench norms`).

Results are the JSON's lists of rows; every row has 'case', 'mode',
'median_ms', 'iqr_ms', 'samples_ms', 'ratio' (to the baseline of its group,
median of per-round ratios) and 'ratio_of_medians'; op rows a 'shape',
network rows 'batch' and 'size'.
"""

import math

from slimnorm.bench import harness as bench_harness

# (description, row selector, baseline selector, limit). A goal on several
# rows (every shape) holds when the worst of them does.
OP_GOALS = (
    ("batch_norm train (fwd+bwd+updates) / TF fused kernel alone", "train", "batch_norm", 1.05),
    ("batch_norm inference / TF fused inference", "inference", "batch_norm", 1.05),
    ("group_norm train / TF fused", "train", "group_norm", 1.2),
    ("layer_norm train / TF fused", "train", "layer_norm", 1.2),
    ("instance_norm train / TF fused", "train", "instance_norm", 1.2),
)


def _shape(row):
    return "x".join(str(d) for d in row["shape"])


def _ms(value, digits=3):
    """`digits` significant digits without an exponent: 1060, 57.2, 0.0907."""
    if value <= 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(value))))
    return "%.*f" % (decimals, value)


def _cell(row):
    return "%.2fx (%s ms ±%s)" % (row["ratio"], _ms(row["median_ms"]), _ms(row["iqr_ms"], 2))


def ops_tables(rows):
    """One table per mode: a row per case, a column per shape."""
    lines = []
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    for mode in modes:
        mode_rows = [r for r in rows if r["mode"] == mode]
        shapes = list(dict.fromkeys(_shape(r) for r in mode_rows))
        cases = list(dict.fromkeys(r["case"] for r in mode_rows))
        lines.append("\n**ops, %s** (ratio to TF fused kernel; median ms ±IQR)\n" % mode)
        lines.append("| case | " + " | ".join(shapes) + " |")
        lines.append("|---" * (len(shapes) + 1) + "|")
        for case in cases:
            cells = []
            for shape in shapes:
                found = [r for r in mode_rows if r["case"] == case and _shape(r) == shape]
                cells.append(_cell(found[0]) if found else "-")
            lines.append("| %s | %s |" % (case, " | ".join(cells)))
    return "\n".join(lines)


def nets_table(rows):
    if not rows:
        return ""
    first = rows[0]
    lines = ["\n**Inception V2, batch %d, %dx%d** (ratio to the fused-kernel net; "
             "median ms ±IQR)\n" % (first["batch"], first["size"], first["size"]),
             "| case | " + " | ".join(dict.fromkeys(r["mode"] for r in rows)) + " |",
             "|---|---|---|"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    for case in dict.fromkeys(r["case"] for r in rows):
        cells = [_cell(r) for m in modes for r in rows if r["case"] == case and r["mode"] == m]
        lines.append("| %s | %s |" % (case, " | ".join(cells)))
    return "\n".join(lines)


def goals(op_rows, net_rows):
    """[{'goal', 'worst', 'worst_of_medians', 'limit', 'met', 'where'}]."""
    out = []

    def add(text, ratio, of_medians, limit, where):
        out.append({"goal": text, "worst": ratio, "worst_of_medians": of_medians,
                    "limit": limit, "met": ratio <= limit, "where": where})

    for text, mode, case, limit in OP_GOALS:
        found = [r for r in op_rows if r["mode"] == mode and r["case"] == case]
        if found:
            worst = max(found, key=lambda r: r["ratio"])
            add(text, worst["ratio"], max(r["ratio_of_medians"] for r in found), limit,
                _shape(worst))
    train = {r["case"]: r for r in net_rows if r["mode"] == "train"}
    if "batch_norm" in train:
        bn = train["batch_norm"]
        add("Inception V2 train step, slimnorm BN / fused-kernel net", bn["ratio"],
            bn["ratio_of_medians"], 1.03, "train")
    if "batch_norm" in train and "group_norm" in train:
        bn, gn = train["batch_norm"], train["group_norm"]
        add("Inception V2 train step, GN / slimnorm BN net",
            bench_harness.paired_ratio(gn["samples_ms"], bn["samples_ms"]),
            gn["median_ms"] / bn["median_ms"], 1.02, "train")
    return out


def goals_table(goal_rows):
    lines = ["\n**goals** (worst ratio, i.e. median of per-round ratios; and the worst "
             "ratio of medians)\n",
             "| goal | ratio | of medians | limit | met |", "|---|---|---|---|---|"]
    for g in goal_rows:
        lines.append("| %s | %.3f (%s) | %.3f | %.2f | %s |" % (
            g["goal"], g["worst"], g["where"], g["worst_of_medians"], g["limit"],
            "yes" if g["met"] else "NO"))
    return "\n".join(lines)
