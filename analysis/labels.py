"""Human words for metrics and params (from `trainables.schema`), shared by the plots, the gallery
and the report."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from analysis.objectives import Objective
from analysis.runs import REPLICATE_COLUMNS, RUN_COLUMNS
from trainables.schema import METRICS, PARAM_SYMBOLS, PROXY_METRICS, THREAT_MODELS


def metric_label(metric: str) -> str:
    """The metric's label; a threat model's key (`recon/ssim:query`) says whose attackers."""
    base, _, qualifier = metric.partition(":")
    info = METRICS.get(base) or PROXY_METRICS.get(base)
    if info is None or (qualifier and qualifier not in THREAT_MODELS):
        return metric
    return f"{info.label}, {qualifier} attackers only" if qualifier else info.label


def axis_label(objective: Objective, arrow: str = "") -> str:
    """`Utility: task accuracy (utility/acc)` + a second line saying which way is better."""
    better = "higher is better" if objective.maximise else "lower is better"
    if objective.metric.startswith(("privacy/leak", "recon/")):
        better += " (more private)"
    return f"{metric_label(objective.metric)} ({objective.metric})\n{arrow}{better}"


def short_metric(metric: str) -> str:
    info = METRICS.get(metric)
    return info.short if info is not None and info.short else metric.rsplit("/", 1)[-1]


def param_columns(table: pa.Table) -> list[str]:
    """Param columns: not a run column, and no `/` (metric keys have one, param keys never)."""
    return [c for c in table.column_names if c not in RUN_COLUMNS and c not in REPLICATE_COLUMNS and "/" not in c]


def swept_params(table: pa.Table) -> list[str]:
    """Params that vary across the table (the swept hyperparameters), method params first."""
    swept = []
    columns = param_columns(table)
    for column in [c for c in columns if c.startswith("params.")] + [c for c in columns if not c.startswith("params.")]:
        values = {repr(v) for v in table.column(column).to_pylist() if v is not None}
        if len(values) > 1:
            swept.append(column)
    return swept


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def describe_params(row: dict[str, Any], columns: list[str]) -> str:
    """`σ=2 λ=0.1 split=3` for the row's non-null values of `columns`."""
    parts = []
    for column in columns:
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        name = column.rsplit(".", 1)[-1]
        parts.append(f"{PARAM_SYMBOLS.get(name, name)}={format_value(value)}")
    return " ".join(parts)
