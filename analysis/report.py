"""The front as text: the per-method summary, summary.md (`analysis.front_report` writes it).

Front values carry their 95 % test-set bootstrap intervals where the runs logged them, each
front point says whether another trial could dominate it within the intervals, and each pair
of methods whether their hypervolumes differ beyond the noise (`analysis.intervals`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis.controls import control_lines
from analysis.intervals import has_intervals, hypervolume_differences, interval, statistically_tied
from analysis.labels import describe_params, format_value, swept_params
from analysis.objectives import ObjectivesLike, parse_objectives
from analysis.pareto import (
    as_table,
    hypervolume,
    hypervolumes,
    objective_values,
    pareto_mask,
    resolve_reference,
)
from analysis.runs import LaunchProgress, table_experiments
from analysis.strength import (
    DEFENSE_CONVERGED,
    FLOOR,
    LEAK,
    PROXY_OF,
    above_floor,
    column,
    defense_unconverged,
    unconverged,
)


def delta_values(table: pa.Table) -> np.ndarray | None:
    """Δ per row: the `privacy/delta` metric, else utility/acc − privacy/leak_acc, else None."""
    names = table.column_names
    if "privacy/delta" in names:
        return pc.cast(table.column("privacy/delta"), pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    if "utility/acc" in names and "privacy/leak_acc" in names:
        values = objective_values(table, ["utility/acc:max", "privacy/leak_acc:min"])
        return values[:, 0] - values[:, 1]
    return None


def method_summary(table: Any, objectives: ObjectivesLike = None, reference: Any = None) -> list[dict[str, Any]]:
    """Per method (sorted): trials, own front size, rows on the combined front, hypervolume
    (one shared reference), best Δ with its run id and params."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = resolve_reference(table, objectives, reference)
    methods = np.asarray([str(m) for m in table.column("method").to_pylist()], dtype=object)
    own = pareto_mask(table, objectives, by="method")
    combined = pareto_mask(table, objectives)
    volumes = hypervolumes(table, objectives, point)
    deltas = delta_values(table)
    swept = swept_params(table)
    records = table.to_pylist()
    summary = []
    for method in sorted(set(methods.tolist())):
        rows = methods == method
        entry: dict[str, Any] = {
            "method": method, "trials": int(rows.sum()), "front_size": int((own & rows).sum()),
            "on_combined_front": int((combined & rows).sum()), "hypervolume": volumes.get(method, 0.0),
            "best_delta": None, "best_delta_run": None, "best_delta_params": "",
        }
        if deltas is not None:
            finite = rows & np.isfinite(deltas)
            if finite.any():
                best = int(np.flatnonzero(finite)[np.argmax(deltas[finite])])
                entry.update(best_delta=float(deltas[best]), best_delta_run=records[best]["run_id"],
                             best_delta_params=describe_params(records[best], swept))
        summary.append(entry)
    return summary


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format_value(value) if not isinstance(value, float) else f"{value:.3f}"


def launch_lines(launches: Sequence[LaunchProgress]) -> list[str]:
    """How much of what the launches planned finished, and each launch that stopped short."""
    planned = [p for p in launches if p.planned_runs is not None]
    if not planned:
        return []
    lines = [f"{sum(p.finished_runs for p in planned)} of {sum(p.planned_runs for p in planned)} planned runs finished."]
    screened = sum(p.screened_runs for p in planned)
    if screened:
        lines[0] += (f" {screened} of them were screened out (`search.screen`): after a screening attack their best case "
                     "was dominated by the launch's front, so they skipped the full attack (and any further seed: "
                     "with replicates, fewer runs than planned is then complete) and are on no front.")
    for p in launches:
        if not p.complete:
            of = f" of {p.planned_runs} planned" if p.planned_runs is not None else ""
            command = "confirm" if p.kind == "confirm" else "run"
            lines.append(f"- launch `{p.launch}` ({p.kind}) is {p.status}: {p.finished_runs}{of} runs finished; "
                         f"continue it with `python -m sweeps {command} SPEC --resume`.")
    return lines


def summary_markdown(
    table: Any, objectives: ObjectivesLike = None, reference: Any = None, *, title: str | None = None,
    launches: Sequence[LaunchProgress] = (),
) -> str:
    """summary.md: objectives and reference, how much of the `launches` finished, a row per
    method, the combined front, then each method beside its same-budget control."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = resolve_reference(table, objectives, reference)
    values = objective_values(table, objectives)
    valid = np.all(np.isfinite(values), axis=1)
    combined = pareto_mask(table, objectives)
    experiments = table_experiments(table)
    lines = [f"# {title or 'Pareto front: ' + (', '.join(experiments) or 'runs')}", ""]
    lines.append("Objectives: " + ", ".join(f"`{o.metric}` ({o.mode})" for o in objectives) + ". "
                 "Hypervolume reference: " + ", ".join(f"`{o.metric}`={p:g}" for o, p in zip(objectives, point, strict=True))
                 + (" (default)." if reference is None else "."))
    note = f" ({int((~valid).sum())} with a missing or NaN objective, on no front)" if (~valid).any() else ""
    lines.append(f"{table.num_rows} trials{note}; {int(combined.sum())} on the combined front; "
                 f"combined hypervolume {hypervolume(table, objectives, point):.4f}.")
    lines += launch_lines(launches)
    lines += ["", "## Per method", "",
              "| method | trials | front size | on combined front | hypervolume | best Δ | best Δ params | best Δ run |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for entry in method_summary(table, objectives, point):
        lines.append(f"| {entry['method']} | {entry['trials']} | {entry['front_size']} | {entry['on_combined_front']} | "
                     f"{entry['hypervolume']:.4f} | {_cell(entry['best_delta'])} | {entry['best_delta_params'] or '—'} | "
                     f"{(entry['best_delta_run'] or '—')[:12]} |")
    records = table.to_pylist()
    swept = swept_params(table)
    order = np.flatnonzero(combined)
    first = objectives[0]
    order = order[np.argsort(values[order, 0] * (-1 if first.maximise else 1), kind="stable")]
    tied = statistically_tied(table, objectives) if has_intervals(table, objectives) else None
    extras = _strength_columns(table, objectives) + _noise_columns(table, records, tied)
    lines += ["", "## Combined front", "",
              "| method | " + " | ".join([o.metric for o in objectives] + [name for name, _ in extras]) + " | params | run |",
              "|---|" + "---:|" * (len(objectives) + len(extras)) + "---|---|"]
    bounds = [interval(table, o.metric) for o in objectives]
    for row in order:
        record = records[row]
        numbers = " | ".join([_with_interval(values[row, i], low[row], high[row]) for i, (low, high) in enumerate(bounds)]
                             + [cells[row] for _, cells in extras])
        lines.append(f"| {record['method']} | {numbers} | {describe_params(record, swept) or '—'} | {record['run_id'][:12]} |")
    lines += _strength_notes(table, objectives, combined, extras)
    lines += _noise_notes(table, objectives, combined, point, tied)
    lines += control_lines(table)
    return "\n".join(lines) + "\n"


def _with_interval(value: float, low: float, high: float) -> str:
    return f"{value:.4f} [{low:.4f}, {high:.4f}]" if np.isfinite(low) and np.isfinite(high) else f"{value:.4f}"


def _noise_columns(table: pa.Table, records: list[dict[str, Any]], tied: list[int | None] | None) -> list[tuple[str, list[str]]]:
    """Seeds behind each point (replicates grouped), and whether another trial could
    dominate it within the 95 % intervals (`tied`: None when the runs have no intervals)."""
    columns: list[tuple[str, list[str]]] = []
    if "seeds" in table.column_names and max(table.column("seeds").to_pylist(), default=1) > 1:
        columns.append(("seeds", [str(n) for n in table.column("seeds").to_pylist()]))
    if tied is None:
        return columns
    cells = ["clear" if other is None else f"tied: {records[other]['method']} {records[other]['run_id'][:8]}" for other in tied]
    return [*columns, ("within intervals", cells)]


def _noise_notes(table: pa.Table, objectives, combined: np.ndarray, point, tied: list[int | None] | None) -> list[str]:
    if tied is None:
        return ["", "- No intervals: these runs predate the test-set bootstrap (`<metric>:ci95_lo/hi`); "
                "differences between points may be noise."]
    front_tied = sum(tied[row] is not None for row in np.flatnonzero(combined))
    lines = ["", "- Values are point estimates [95 % interval: the test-set bootstrap for one seed; for several seeds, "
             f"that of their mean, `analysis.replicates`]. {front_tied} of {int(combined.sum())} "
             "front point(s) are statistically tied: another trial could dominate them within the intervals "
             "(on every objective its favourable end reaches this point's unfavourable end)."]
    pairs = hypervolume_differences(table, objectives, point)
    if pairs:
        lines += ["", "## Hypervolume differences between methods", "",
                  "HV(a) − HV(b), with the 95 % interval of 1,000 redraws of every trial within its interval.", "",
                  "| a | b | HV(a) − HV(b) | 95 % interval | verdict |", "|---|---|---:|---|---|"]
        for pair in pairs:
            verdict = {True: "differ", False: "tied", None: "unknown (no intervals)"}[pair["differ"]]
            lines.append(f"| {pair['a']} | {pair['b']} | {pair['difference']:+.4f} | "
                         f"[{pair['low']:+.4f}, {pair['high']:+.4f}] | {verdict} |")
    return lines


def _strength_columns(table: pa.Table, objectives) -> list[tuple[str, list[str]]]:
    """Extra front-table columns: the method's own adversary (proxy) beside each fresh
    privacy objective, leakage above the floor, and whether the attackers converged."""
    extras: list[tuple[str, list[str]]] = []
    metrics = [o.metric for o in objectives]
    for metric in metrics:
        proxy = PROXY_OF.get(metric)
        if proxy and proxy in table.column_names:
            extras.append((f"{proxy} (own adversary)", [_cell(v) for v in column(table, proxy).tolist()]))
    if LEAK in metrics and FLOOR in table.column_names:
        extras.append(("leak above floor", [_cell(v) for v in above_floor(table).tolist()]))
    flags = np.zeros(table.num_rows, dtype=bool)
    for metric in metrics:
        flags |= unconverged(table, metric)
    if any(name.startswith("attack/converged/") for name in table.column_names):
        extras.append(("attackers", ["cap hit: lower bound" if flag else "converged" for flag in flags]))
    if DEFENSE_CONVERGED in table.column_names:
        extras.append(("defense", ["cap hit: undertrained" if flag else "converged" for flag in defense_unconverged(table)]))
    return extras


def _strength_notes(table: pa.Table, objectives, combined: np.ndarray, extras) -> list[str]:
    notes = []
    names = [name for name, _ in extras]
    if "attackers" in names:
        cells = dict(extras)["attackers"]
        capped = [i for i in np.flatnonzero(combined) if cells[i] != "converged"]
        if capped:
            notes.append(f"- {len(capped)} front point(s) have a strongest attacker that hit `attacks.epochs` before it "
                         "converged: their privacy numbers are lower bounds on the leakage (raise `attacks.epochs`).")
    if "defense" in names:
        cells = dict(extras)["defense"]
        capped = [i for i in np.flatnonzero(combined) if cells[i] != "converged"]
        if capped:
            notes.append(f"- {len(capped)} front point(s) come from a defense that hit `train.epochs` before it converged: "
                         "an undertrained defense, whose place on the front says nothing yet about the method (raise "
                         "`train.epochs`).")
    if any("own adversary" in name for name in names):
        notes.append("- `(own adversary)`: the method's training-time adversary, frozen, on the same test split. Far below "
                     "the fresh attackers' number means the defense fools only its own adversary.")
    if "leak above floor" in names:
        floors = column(table, FLOOR)
        floors = floors[np.isfinite(floors)]
        if floors.size:
            notes.append(f"- leakage floor (the task label alone predicts the private attribute): {np.median(floors):.3f}; "
                         "no defense with perfect utility leaks less.")
    return ["", *notes] if notes else []
