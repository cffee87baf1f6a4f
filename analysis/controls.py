"""Same-budget controls side by side.

A method that declares a control (`Method.control`; its runs carry the `privsweep.control`
tag: DISCO -> `random_pruning`, sharing `params.pruning_ratio`) is only worth its learning
if it beats the control spending the same budget blindly. Each of its rows is paired with the
control's row at the same shared params and the same configuration otherwise (every
non-method param column equal: split, data, schedule, seed), and the pair is compared on
utility, leakage and SSIM by their 95 % intervals: one is lower only when the intervals are
disjoint. `sweeps confirm SPEC --controls` runs the controls a sweep is missing.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from analysis.intervals import interval
from analysis.labels import describe_params, param_columns, swept_params
from analysis.strength import LEAK, SSIM, column

COMPARED = ("utility/acc", LEAK, SSIM)
PRIVACY = (LEAK, SSIM)  # the verdict columns: lower is more private


def _key(record: dict[str, Any], columns: list[str]) -> tuple:
    return tuple(repr(record.get(c)) for c in columns)


def control_pairs(table: pa.Table) -> list[dict[str, Any]]:
    """[{"row", "control_row" (None: no matching control run), "control", "shared"}] for every
    row of a method with a control, in table order."""
    if "control" not in table.column_names:
        return []
    records = table.to_pylist()
    fixed = [c for c in param_columns(table) if not c.startswith("params.")]
    pairs = []
    for row, record in enumerate(records):
        if not record.get("control"):
            continue
        declared = json.loads(record["control"])
        columns = fixed + list(declared["shared"])
        want = _key(record, columns)
        matches = [r for r, other in enumerate(records) if other["method"] == declared["method"] and _key(other, columns) == want]
        pairs.append({"row": row, "control_row": matches[-1] if matches else None, "control": declared["method"],
                      "shared": list(declared["shared"])})
    return pairs


def lower(bounds: tuple[np.ndarray, np.ndarray], a: int, b: int) -> int | None:
    """a or b when that row's interval (`bounds` = a metric's (low, high)) lies wholly below the other's, else None."""
    low, high = bounds
    if not np.all(np.isfinite([low[a], high[a], low[b], high[b]])):
        return None
    if high[a] < low[b]:
        return a
    if high[b] < low[a]:
        return b
    return None


def _value(values: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], row: int) -> str:
    value = values[row]
    low, high = bounds
    if not np.isfinite(value):
        return "—"
    return f"{value:.3f} [{low[row]:.3f}, {high[row]:.3f}]" if np.isfinite(low[row]) and np.isfinite(high[row]) else f"{value:.3f}"


def control_lines(table: pa.Table) -> list[str]:
    """The summary.md section: each pair on one row, and the configurations without a control run."""
    pairs = control_pairs(table)
    if not pairs:
        return []
    records = table.to_pylist()
    swept = swept_params(table)
    metrics = [m for m in COMPARED if m in table.column_names]
    privacy = [m for m in PRIVACY if m in metrics]
    values = {m: column(table, m) for m in metrics}
    bounds = {m: interval(table, m) for m in metrics}  # once per metric, not per cell
    header = ["method", "params"] + [f"{m}: method / control" for m in metrics] + [f"lower {m}" for m in privacy]
    rows, missing = [], []
    for pair in pairs:
        row, other = pair["row"], pair["control_row"]
        record = records[row]
        if other is None:
            missing.append(describe_params(record, pair["shared"] + ["model.split"]))
            continue
        shown = [*pair["shared"], "model.split", *(c for c in swept if c not in pair["shared"] and c != "model.split")]
        cells = [f"{record['method']} vs {pair['control']}", describe_params(record, shown) or "—"]
        cells += [f"{_value(values[m], bounds[m], row)} / {_value(values[m], bounds[m], other)}" for m in metrics]
        for metric in privacy:
            winner = lower(bounds[metric], row, other)
            cells.append("tied" if winner is None else (record["method"] if winner == row else pair["control"]))
        rows.append("| " + " | ".join(cells) + " |")
    lines = ["", "## Same-budget controls", ""]
    if rows:
        lines += ["Each row: the method beside its control at the same shared params and split (95 % intervals; "
                  "\"lower\" only when they are disjoint, else tied).", "",
                  "| " + " | ".join(header) + " |", "|---|---|" + "---|" * (len(header) - 2), *rows]
    if missing:
        shown = sorted(set(missing))
        lines += ["", f"- {len(missing)} configuration(s) have no run of their control ({'; '.join(shown[:5])}"
                  f"{' …' if len(shown) > 5 else ''}): run `python -m sweeps confirm SPEC --controls`."]
    return lines
