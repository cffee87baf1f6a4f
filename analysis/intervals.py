"""What the analysis knows of each number's noise: the 95 % test-set bootstrap interval the
trainable logs beside every final metric (`<key>:ci95_lo`, `<key>:ci95_hi`; see
`trainables.bootstrap`). Runs from before intervals existed have none: NaN here.

- `interval(table, metric)`: (low, high) per row.
- `statistically_tied(table, objectives)`: per row, the first other trial that could
  dominate it within the intervals: on every objective the other's favourable interval end
  is at least as good as this row's unfavourable end (their intervals overlap, or the other
  is plainly better). A front point with such a neighbour is on the front as far as the test
  set can tell only by the luck of the draw: "statistically tied". A value without an
  interval counts as exact; with no interval on any objective there is no judgement (None).
- `hypervolume_differences(table, objectives, reference)`: for each pair of methods, the
  95 % interval of HV(a) - HV(b) over 1,000 redraws in which every trial's objectives are
  drawn from a normal with its interval's SD (width / 3.92), independently across trials.
  Noise inflates a hypervolume (a lucky draw pushes the front out more than an unlucky one
  pulls it in), the more so for a method with more or noisier trials, so the interval is
  the basic (pivot) one, 2 d - the redraws' percentiles, centred on the observed
  difference d. The trials share one test set, so their errors are positively correlated
  and independent redraws overstate the noise of a difference: a pair called "differs"
  differs at least this clearly. A pair whose interval holds 0 is "tied"; a pair with a
  trial without intervals gets no verdict ("unknown").
- `hypervolume_interval(table, objectives, reference)`: the combined front's hypervolume
  with the basic 95 % interval of the same redraws.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa

from analysis.objectives import Objective, ObjectivesLike, parse_objectives
from analysis.pareto import as_table, objective_values, resolve_reference, values_hypervolume
from analysis.strength import column
from trainables.schema import INTERVAL_HIGH, INTERVAL_LOW

NORMAL_WIDTH = 2 * 1.959964  # a 95 % normal interval is this many SDs wide


def interval(table: pa.Table, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per row; NaN where a run has none, all NaN when the table has none."""
    return column(table, metric + INTERVAL_LOW), column(table, metric + INTERVAL_HIGH)


def has_interval(table: pa.Table, metric: str) -> bool:
    return metric + INTERVAL_LOW in table.column_names and metric + INTERVAL_HIGH in table.column_names


def has_intervals(table: pa.Table, objectives: ObjectivesLike) -> bool:
    return any(has_interval(table, o.metric) for o in parse_objectives(objectives))


def _ends(table: pa.Table, objective: Objective, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(favourable, unfavourable) interval ends in the objective's orientation; a value
    without an interval (client/gflops, a run from before intervals) counts as exact."""
    low, high = interval(table, objective.metric)
    known = np.isfinite(low) & np.isfinite(high)
    low, high = np.where(known, low, values), np.where(known, high, values)
    return (high, low) if objective.maximise else (low, high)


def statistically_tied(table: Any, objectives: ObjectivesLike) -> list[int | None]:
    """Per row: the index of one other row that could dominate it within the intervals, or
    None: clear, or no objective has an interval to judge by (`has_intervals`)."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    if not has_intervals(table, objectives):
        return [None] * table.num_rows
    values = objective_values(table, objectives)
    valid = np.all(np.isfinite(values), axis=1)
    could_beat = np.ones((table.num_rows, table.num_rows), dtype=bool)  # [row, other]
    for index, objective in enumerate(objectives):
        favourable, unfavourable = _ends(table, objective, values[:, index])
        if objective.maximise:
            could_beat &= favourable[None, :] >= unfavourable[:, None]
        else:
            could_beat &= favourable[None, :] <= unfavourable[:, None]
    np.fill_diagonal(could_beat, False)
    could_beat &= valid[None, :] & valid[:, None]
    tied = []
    for row in range(table.num_rows):
        others = np.flatnonzero(could_beat[row])
        tied.append(int(others[0]) if others.size else None)
    return tied


def _redrawn_hypervolumes(
    table: pa.Table, objectives: tuple[Objective, ...], point: np.ndarray, groups: dict[str, np.ndarray], resamples: int, seed: int
) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """Per group of rows: its observed hypervolume and its hypervolume in each of `resamples`
    redraws of every trial within its interval; and which rows have intervals on every objective."""
    values = objective_values(table, objectives)
    maximise = [o.maximise for o in objectives]
    sd = np.stack([(high - low) / NORMAL_WIDTH for low, high in (interval(table, o.metric) for o in objectives)], axis=1)
    known = np.isfinite(sd).all(axis=1)
    sd = np.where(np.isfinite(sd), sd, 0.0)
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(resamples) for name in groups}
    for index in range(resamples):
        noisy = values + rng.standard_normal(values.shape) * sd
        for name, rows in groups.items():
            draws[name][index] = values_hypervolume(noisy[rows], maximise, point)
    observed = {name: values_hypervolume(values[rows], maximise, point) for name, rows in groups.items()}
    return observed, draws, known


def _basic_interval(observed: float, draws: np.ndarray) -> tuple[float, float]:
    """The basic (pivot) 95 % interval, 2 d - the redraws' percentiles (see the module doc)."""
    upper_draw, lower_draw = np.percentile(draws, [97.5, 2.5])
    return float(2 * observed - upper_draw), float(2 * observed - lower_draw)


def hypervolume_interval(
    table: Any, objectives: ObjectivesLike, reference: Any = None, *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """The combined front's hypervolume and its 95 % interval (the redraws of
    `hypervolume_differences`); the interval is (nan, nan) when a trial has no interval."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = np.asarray(resolve_reference(table, objectives, reference), dtype=float)
    valid = np.all(np.isfinite(objective_values(table, objectives)), axis=1)
    observed, draws, known = _redrawn_hypervolumes(table, objectives, point, {"all": valid}, resamples, seed)
    if not known[valid].all():
        return observed["all"], float("nan"), float("nan")
    return (observed["all"], *_basic_interval(observed["all"], draws["all"]))


def hypervolume_differences(
    table: Any, objectives: ObjectivesLike, reference: Any = None, *, resamples: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per pair of methods (sorted): the observed HV difference, its 95 % interval and
    whether the two differ beyond it (None: the trials have no intervals)."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = np.asarray(resolve_reference(table, objectives, reference), dtype=float)
    valid = np.all(np.isfinite(objective_values(table, objectives)), axis=1)
    methods = np.asarray([str(m) for m in table.column("method").to_pylist()], dtype=object)
    groups = {name: valid & (methods == name) for name in sorted(set(methods[valid].tolist()))}
    observed, draws, known = _redrawn_hypervolumes(table, objectives, point, groups, resamples, seed)
    pairs = []
    for a, b in itertools.combinations(groups, 2):
        observed_difference = observed[a] - observed[b]
        low, high = _basic_interval(observed_difference, draws[a] - draws[b])
        judged = bool(known[groups[a] | groups[b]].all())
        pairs.append({"a": a, "b": b, "difference": observed_difference, "low": low, "high": high,
                      "differ": (not low <= 0.0 <= high) if judged else None})
    return pairs
