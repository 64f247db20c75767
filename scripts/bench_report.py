"""Markdown tables and goal checks of scripts/bench.py's results.

Results are the JSON's lists of rows; every row has 'case', 'mode',
'median_ms', 'iqr_ms' and 'ratio' (to the baseline of its group), op rows a
'shape', network rows 'batch' and 'size'.
"""

# (description, row selector, baseline selector, limit). A goal on several
# rows (every shape) holds when the worst of them does.
OP_GOALS = (
    ("batch_norm train (fwd+bwd+updates) / TF fused kernel alone", "train", "batch_norm", 1.05),
    ("batch_norm inference / TF fused inference", "inference", "batch_norm", 1.05),
    ("group_norm train / TF fused", "train", "group_norm", 1.5),
    ("layer_norm train / TF fused", "train", "layer_norm", 1.5),
    ("instance_norm train / TF fused", "train", "instance_norm", 1.5),
)


def _shape(row):
    return "x".join(str(d) for d in row["shape"])


def _cell(row):
    return "%.2fx (%.3g ms ±%.2g)" % (row["ratio"], row["median_ms"], row["iqr_ms"])


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
    """[{'goal', 'worst', 'limit', 'met', 'where'}] for the goals measured."""
    out = []
    for text, mode, case, limit in OP_GOALS:
        found = [r for r in op_rows if r["mode"] == mode and r["case"] == case]
        if found:
            worst = max(found, key=lambda r: r["ratio"])
            out.append({"goal": text, "worst": worst["ratio"], "limit": limit,
                        "met": worst["ratio"] <= limit, "where": _shape(worst),
                        "worst_paired": max(r["paired_ratio"] for r in found)})
    train = {r["case"]: r for r in net_rows if r["mode"] == "train"}
    if "batch_norm" in train:
        ratio = train["batch_norm"]["ratio"]
        out.append({"goal": "Inception V2 train step, slimnorm BN / fused-kernel net",
                    "worst": ratio, "limit": 1.03, "met": ratio <= 1.03, "where": "train",
                    "worst_paired": train["batch_norm"]["paired_ratio"]})
    if "batch_norm" in train and "group_norm" in train:
        ratio = train["group_norm"]["median_ms"] / train["batch_norm"]["median_ms"]
        out.append({"goal": "Inception V2 train step, GN / slimnorm BN net",
                    "worst": ratio, "limit": 1.2, "met": ratio <= 1.2, "where": "train",
                    "worst_paired": (train["group_norm"]["paired_ratio"]
                                     / train["batch_norm"]["paired_ratio"])})
    return out


def goals_table(goal_rows):
    lines = ["\n**goals** (worst ratio of medians; worst median of paired ratios)\n",
             "| goal | ratio | paired | limit | met |", "|---|---|---|---|---|"]
    for g in goal_rows:
        lines.append("| %s | %.3f (%s) | %.3f | %.2f | %s |" % (
            g["goal"], g["worst"], g["where"], g["worst_paired"], g["limit"],
            "yes" if g["met"] else "NO"))
    return "\n".join(lines)
