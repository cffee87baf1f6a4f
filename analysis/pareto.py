"""Pareto fronts and hypervolume over a runs table, for any number of objectives (via moocore).

Conventions (documented here once, relied on everywhere):

* A row enters a front only if every objective value is present and finite; rows with a
  missing or NaN objective are never on a front (and never count towards a hypervolume).
* A row is on the front when no other row is at least as good in every objective and
  strictly better in one. Ties: identical objective vectors are all kept (each of the
  identical runs is on the front), so no configuration is hidden behind a duplicate.
* Per-method fronts: `by="method"` computes the front within each method separately.
* Hypervolume is measured against a reference point in the objectives' own units and
  orientation; `default_reference` documents the default, which is chosen so that numbers
  are comparable across sweeps and methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import moocore
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analysis.errors import AnalysisInputError
from analysis.objectives import ObjectivesLike, parse_objectives
from trainables.schema import metric_info

#: Metric holding the task's chance rate (majority-class rate), if the trainable logs it.
UTILITY_CHANCE_METRIC = "utility/chance"


def as_table(data: Any) -> pa.Table:
    """A `pyarrow.Table` from a table, record batch or pandas DataFrame."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pyarrow.Table or pandas.DataFrame, got {type(data).__name__}")


def objective_values(table: Any, objectives: ObjectivesLike = None) -> np.ndarray:
    """The (rows x objectives) float matrix in the objectives' own orientation; NaN where missing."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    missing = [o.metric for o in objectives if o.metric not in table.column_names]
    if missing:
        metrics = sorted(name for name in table.column_names if "/" in name)
        raise AnalysisInputError(
            f"Objective metric {', '.join(repr(m) for m in missing)} is not in the runs table. "
            f"Metrics logged by these runs: {', '.join(metrics) or 'none'}. "
            "Name objectives by their exact MLflow metric key, e.g. --objectives utility/acc:max privacy/leak_acc:min."
        )
    columns = []
    for objective in objectives:
        column = table.column(objective.metric)
        try:
            column = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise AnalysisInputError(
                f"Objective column {objective.metric!r} is not numeric (type {column.type}); objectives must be metrics."
            ) from None
        columns.append(column.to_numpy(zero_copy_only=False).astype(float))
    if not columns:
        return np.empty((table.num_rows, 0))
    return np.column_stack(columns) if table.num_rows else np.empty((0, len(columns)))


def _valid(values: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(values), axis=1)


def _front_mask(values: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    mask = np.zeros(len(values), dtype=bool)
    valid = _valid(values)
    if valid.any():
        mask[valid] = moocore.is_nondominated(values[valid], maximise=list(maximise), keep_weakly=True)
    return mask


def _groups(table: pa.Table, by: str) -> np.ndarray:
    if by not in table.column_names:
        raise AnalysisInputError(f"Cannot group fronts by {by!r}: the runs table has no such column.")
    return np.asarray(table.column(by).to_pylist(), dtype=object)


def pareto_mask(table: Any, objectives: ObjectivesLike = None, by: str | None = None) -> np.ndarray:
    """Boolean mask of the rows on the Pareto front (within each `by` group if given)."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    values = objective_values(table, objectives)
    maximise = [o.maximise for o in objectives]
    if by is None:
        return _front_mask(values, maximise)
    groups = _groups(table, by)
    mask = np.zeros(table.num_rows, dtype=bool)
    for group in dict.fromkeys(groups.tolist()):
        rows = np.flatnonzero([g == group for g in groups])
        mask[rows] = _front_mask(values[rows], maximise)
    return mask


def pareto_front(table: Any, objectives: ObjectivesLike = None, by: str | None = None) -> pa.Table:
    """The non-dominated rows of `table`, in their original order.

    `objectives`: e.g. `["utility/acc:max", "privacy/leak_acc:min"]` (any number, any modes;
    default utility/acc max + privacy/leak_acc min). `by="method"` gives every method's own
    front (rows on their method's front); `by=None` the combined front over all rows.
    """
    table = as_table(table)
    return table.filter(pa.array(pareto_mask(table, objectives, by=by)))


def method_fronts(table: Any, objectives: ObjectivesLike = None, by: str = "method") -> dict[str, pa.Table]:
    """Each method's own front, keyed by method (sorted)."""
    table = as_table(table)
    groups = _groups(table, by)
    mask = pareto_mask(table, objectives, by=by)
    return {
        str(group): table.filter(pa.array(mask & (groups == group)))
        for group in sorted({g for g in groups.tolist() if g is not None}, key=str)
    }


def default_reference(table: Any, objectives: ObjectivesLike = None) -> np.ndarray:
    """The default hypervolume reference point: the worst meaningful value of each objective.

    * maximised objectives: the low end of the metric's range (`trainables.schema.METRICS`:
      0.0 for most, -1.0 for `privacy/delta`, Δ = utility − leakage); for `utility/*`
      accuracies the task's chance rate instead when a `utility/chance` metric is logged
      (its smallest value in the table).
    * minimised objectives whose range has a high end (accuracies such as
      `privacy/leak_acc`, SSIM / MS-SSIM, L1, MSE, LPIPS: 1.0).
    * minimised objectives without a natural bound (PSNR, GFLOPs, seconds, ...): the worst
      value in the table. Only this case depends on the data; pass `reference=` explicitly
      to compare such numbers across sweeps.

    Hence the classic pair (utility/acc max, privacy/leak_acc min) uses (0.0, 1.0), or
    (chance, 1.0): a fixed point, so hypervolumes of different sweeps and methods compare.
    """
    table = as_table(table)
    objectives = parse_objectives(objectives)
    values = objective_values(table, objectives)
    reference = []
    for index, objective in enumerate(objectives):
        info = metric_info(objective.metric)
        if objective.maximise:
            value = info.low if info is not None and info.low is not None else 0.0
            if objective.metric.startswith("utility/acc") and UTILITY_CHANCE_METRIC in table.column_names:
                chance = pc.cast(table.column(UTILITY_CHANCE_METRIC), pa.float64()).to_numpy(zero_copy_only=False)
                chance = chance[np.isfinite(chance)]
                if chance.size:
                    value = float(chance.min())
        elif info is not None and info.high is not None:
            value = info.high
        else:
            column = values[:, index]
            column = column[np.isfinite(column)]
            value = float(column.max()) if column.size else 1.0
        reference.append(value)
    return np.asarray(reference, dtype=float)


def resolve_reference(table: Any, objectives: ObjectivesLike, reference: Any) -> np.ndarray:
    """`reference` as an array in objective order (validated), or `default_reference` when None."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    if reference is None:
        return default_reference(table, objectives)
    if isinstance(reference, Mapping):
        unknown = set(reference) - {o.metric for o in objectives}
        if unknown or len(reference) != len(objectives):
            raise AnalysisInputError(
                f"The reference point {dict(reference)!r} must give one value for each objective metric "
                f"({', '.join(o.metric for o in objectives)})."
            )
        reference = [reference[o.metric] for o in objectives]
    point = np.asarray(reference, dtype=float).reshape(-1)
    if point.shape != (len(objectives),) or not np.all(np.isfinite(point)):
        raise AnalysisInputError(
            f"The reference point {list(np.atleast_1d(reference))!r} must have one finite value per objective "
            f"({len(objectives)}: {', '.join(str(o) for o in objectives)})."
        )
    return point


def hypervolume(table: Any, objectives: ObjectivesLike = None, reference: Any = None) -> float:
    """Hypervolume of the rows' objective vectors with respect to `reference`.

    `reference`: one value per objective (a sequence in objective order or a
    `{metric: value}` mapping) in the objectives' own units; default `default_reference`.
    Rows with a missing/NaN objective and rows not strictly better than the reference in
    every objective contribute nothing. Max objectives are negated for moocore, which
    minimises; the number is the same as the volume in the original orientation.
    """
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = resolve_reference(table, objectives, reference)
    return values_hypervolume(objective_values(table, objectives), [o.maximise for o in objectives], point)


def values_hypervolume(values: np.ndarray, maximise: Sequence[bool], reference: np.ndarray) -> float:
    """`hypervolume` of a (rows x objectives) matrix in the objectives' own orientation."""
    signs = np.where(np.asarray(maximise, dtype=bool), -1.0, 1.0)
    losses = values[_valid(values)] * signs
    ref = np.asarray(reference, dtype=float) * signs
    losses = losses[np.all(losses < ref, axis=1)]
    if not len(losses):
        return 0.0
    volume = float(moocore.hypervolume(losses, ref=ref))
    return volume if math.isfinite(volume) else float("nan")


def hypervolumes(
    table: Any, objectives: ObjectivesLike = None, reference: Any = None, by: str = "method"
) -> dict[str, float]:
    """Hypervolume of each method (sorted), all against the same reference point.

    The default reference is computed once from the whole table, so the methods compare.
    """
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = resolve_reference(table, objectives, reference)
    groups = _groups(table, by)
    return {
        str(group): hypervolume(table.filter(pa.array(groups == group)), objectives, point)
        for group in sorted({g for g in groups.tolist() if g is not None}, key=str)
    }


def hypervolume_curves(
    table: Any, objectives: ObjectivesLike = None, reference: Any = None, by: str = "method"
) -> dict[str, np.ndarray]:
    """Hypervolume after each completed trial, in the table's order (`load_runs`: start
    time): `"all"` is the combined front's after trials 1..n; each method's entry is its own
    front's after the same n trials of the sweep (flat while other methods run), all against
    one reference, so the curves share the axis "trials completed"."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = resolve_reference(table, objectives, reference)
    values = objective_values(table, objectives)
    maximise = [o.maximise for o in objectives]
    groups = _groups(table, by)
    names = sorted({g for g in groups.tolist() if g is not None}, key=str)
    curves = {"all": np.array([values_hypervolume(values[: n + 1], maximise, point) for n in range(len(values))])}
    for name in names:
        rows = groups == name
        curves[str(name)] = np.array([values_hypervolume(values[: n + 1][rows[: n + 1]], maximise, point) for n in range(len(values))])
    return curves
