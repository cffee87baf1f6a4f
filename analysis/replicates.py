"""Seed replicates: one row per configuration, with its mean and the noise of that mean.

A configuration run under several seeds (`search.replicates`, `sweeps confirm`) has one
MLflow child run per seed, all with the same `config_id`. `group_replicates` turns a runs
table into one row per configuration (runs without a `config_id`, from before replicates,
stay rows of their own):

- every metric is the mean over the configuration's seeds (a seed run twice counts once,
  by its latest run); `seeds` counts them and
  `run_ids` lists their runs (comma-separated; `run_id` is the first seed's);
- `<metric>:seed_sd` is the across-seed standard deviation (NaN for one seed);
- `<metric>:ci95_lo/hi` is the 95 % interval of the mean. The seeds share one test set,
  so averaging them removes training noise but not test-sampling noise: the half-width is
  sqrt((t(0.975, n-1) * sd / sqrt(n))^2 + h^2), with h the mean half-width of the seeds'
  test-set bootstrap intervals (the two noises are independent). With one seed it is that
  seed's bootstrap interval.

Fronts, hypervolumes, plots and the summary computed on the grouped table are computed on
the means, with these intervals (`analysis.intervals`). `confirmation_table` compares a
front drawn through single seeds with the front of the means (`sweeps confirm`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import stats

from analysis.intervals import has_interval, interval
from analysis.labels import describe_params, swept_params
from analysis.objectives import ObjectivesLike, parse_objectives
from analysis.pareto import as_table, objective_values, pareto_mask
from analysis.runs import REPLICATE_COLUMNS
from analysis.strength import column
from trainables.schema import INTERVAL_HIGH, INTERVAL_LOW, is_interval_key

SEED_SD = ":seed_sd"
SEEDS, RUN_IDS = REPLICATE_COLUMNS


def _is_metric(name: str) -> bool:
    return "/" in name and not is_interval_key(name) and not name.endswith(SEED_SD)


def _group_keys(table: pa.Table) -> list[str]:
    ids = table.column("config_id").to_pylist() if "config_id" in table.column_names else [None] * table.num_rows
    run_ids = table.column("run_id").to_pylist()
    return [config or f"run:{run}" for config, run in zip(ids, run_ids, strict=True)]


def mean_interval(values: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, across-seed SD, interval low, high) of one configuration's seed values, given
    each seed's test-set interval (NaN where absent); see the module docstring."""
    values, lows, highs = (np.asarray(a, dtype=float) for a in (values, lows, highs))
    if not len(values):
        return math.nan, math.nan, math.nan, math.nan
    mean = float(np.mean(values))
    if len(values) == 1:
        return mean, math.nan, float(lows[0]), float(highs[0])
    sd = float(np.std(values, ddof=1))
    halves = (highs - lows) / 2
    test_half = float(np.mean(halves[np.isfinite(halves)])) if np.isfinite(halves).any() else 0.0
    half = math.hypot(stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values)), test_half)
    return mean, sd, mean - half, mean + half


def _latest_per_seed(table: pa.Table, keys: list[str]) -> dict[str, list[int]]:
    """Rows per configuration, one per replicate: a seed run twice (the same spec launched
    again without --resume) counts once, by its latest run (the table is in start order)."""
    replicates = table.column("replicate").to_pylist() if "replicate" in table.column_names else [None] * table.num_rows
    latest: dict[tuple[str, Any], int] = {}
    for row, (key, replicate) in enumerate(zip(keys, replicates, strict=True)):
        latest[(key, replicate if replicate is not None else "0")] = row
    groups: dict[str, list[int]] = {}
    for (key, _), row in sorted(latest.items(), key=lambda item: item[1]):
        groups.setdefault(key, []).append(row)
    return groups


def group_replicates(table: Any) -> pa.Table:
    """One row per configuration (see the module docstring)."""
    table = as_table(table)
    groups = _latest_per_seed(table, _group_keys(table))
    firsts = [rows[0] for rows in groups.values()]
    metrics = [name for name in table.column_names if _is_metric(name)]
    columns: dict[str, Any] = {}
    for name in table.column_names:
        if "/" not in name:
            columns[name] = table.column(name).take(pa.array(firsts, pa.int64()))
    run_ids = table.column("run_id").to_pylist()
    columns[SEEDS] = pa.array([len(rows) for rows in groups.values()], pa.int64())
    columns[RUN_IDS] = pa.array([",".join(run_ids[r] for r in rows) for rows in groups.values()], pa.string())
    for name in metrics:
        values = column(table, name)
        low, high = interval(table, name)
        means, sds, lows, highs = [], [], [], []
        for rows in groups.values():
            present = [r for r in rows if math.isfinite(values[r])]
            mean, sd, lo, hi = mean_interval(values[present], low[present], high[present])
            means.append(mean)
            sds.append(sd)
            lows.append(lo)
            highs.append(hi)
        columns[name] = pa.array(means, pa.float64())
        if has_interval(table, name) or any(math.isfinite(v) for v in lows):
            columns[name + INTERVAL_LOW] = pa.array(lows, pa.float64())
            columns[name + INTERVAL_HIGH] = pa.array(highs, pa.float64())
        if any(math.isfinite(v) for v in sds):
            columns[name + SEED_SD] = pa.array(sds, pa.float64())
    return pa.table(columns).replace_schema_metadata(table.schema.metadata)


def replicate_run_ids(table: pa.Table) -> list[str]:
    """Every run behind the rows of a grouped (or plain) runs table."""
    if RUN_IDS not in table.column_names:
        return table.column("run_id").to_pylist()
    return [run for ids in table.column(RUN_IDS).to_pylist() for run in ids.split(",") if run]


def confirmation_table(table: Any, objectives: ObjectivesLike) -> tuple[str, int, int]:
    """Markdown: each configuration on the single-seed front (replicate 0 alone, as the
    sweep drew it) with its single-seed values beside its all-seed means [interval] (n), and
    whether it is still on the front of the means. Returns (text, survivors, front size)."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    replicate = table.column("replicate").to_pylist() if "replicate" in table.column_names else [None] * table.num_rows
    first = table.filter(pa.array([r in (None, "0") for r in replicate]))
    single_front = pareto_mask(first, objectives)
    grouped = group_replicates(table)
    mean_front = dict(zip(_group_keys(grouped), pareto_mask(grouped, objectives).tolist(), strict=True))
    grouped_rows = dict(zip(_group_keys(grouped), grouped.to_pylist(), strict=True))
    single_values = objective_values(first, objectives)
    swept = [p for p in swept_params(grouped) if p != "train.seed"]
    header = " | ".join(f"{o.metric}: 1 seed | mean [95 %]" for o in objectives)
    lines = [f"| configuration | {header} | seeds | on the front of the means |", "|---|" + "---:|---|" * len(objectives) + "---:|---|"]
    survivors = 0
    first_keys = _group_keys(first)
    for row in np.flatnonzero(single_front):
        key = first_keys[row]
        group = grouped_rows[key]
        cells = []
        for index, objective in enumerate(objectives):
            mean, lo, hi = group[objective.metric], group.get(objective.metric + INTERVAL_LOW), group.get(objective.metric + INTERVAL_HIGH)
            shown = f"{mean:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None and math.isfinite(lo) else "")
            cells.append(f"{single_values[row, index]:.4f} | {shown}")
        survives = mean_front[key]
        survivors += survives
        label = f"{group['method']} {describe_params(group, swept)}".strip()
        lines.append(f"| {label} | {' | '.join(cells)} | {group[SEEDS]} | {'yes' if survives else 'no'} |")
    total = int(single_front.sum())
    lines.append("")
    lines.append(f"{survivors} of {total} single-seed front configuration(s) stay on the front of the seed means.")
    return "\n".join(lines) + "\n", survivors, total
