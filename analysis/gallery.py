"""Originals vs reconstructions of the front's trials, from each run's `reconstructions.png`.

The launcher's image is a grid: originals in the top row, the strongest decoder's
reconstructions of the same inputs in the bottom row. The gallery stacks one such image
per front trial, row by row from most private to least, each titled with the method, the
objective values, its SSIM and the swept params, so one sees what the privacy numbers mean.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image as mpimage
from matplotlib.figure import Figure

from analysis.labels import describe_params, short_metric, swept_params
from analysis.objectives import ObjectivesLike, parse_objectives
from analysis.pareto import as_table, objective_values, pareto_mask
from analysis.plots import axes_objectives
from analysis.runs import resolve_tracking_uri, table_tracking_uri
from analysis.strength import SSIM

RECONSTRUCTIONS = "reconstructions.png"


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No tqdm progress bar per downloaded file (restores the caller's setting)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    previous = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def load_artifact_image(run_id: str, tracking_uri: str | None = None, artifact: str = RECONSTRUCTIONS) -> np.ndarray | None:
    """A run's image artifact as an array, or None when the run has none (or it is unreadable)."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as scratch, _quiet_downloads():
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact, tracking_uri=resolve_tracking_uri(tracking_uri), dst_path=scratch
            )
            return np.asarray(mpimage.imread(Path(local)))
        except Exception:  # missing artifact, unreachable store, not an image: shown as "no image"
            return None


def plot_gallery(
    table: Any,
    objectives: ObjectivesLike = None,
    *,
    tracking_uri: str | None = None,
    front_only: bool = True,
    max_items: int = 12,
    artifact: str = RECONSTRUCTIONS,
) -> Figure:
    """One row per trial on the combined front (or every trial with `front_only=False`).

    `tracking_uri`: default the one the table was loaded from (its schema metadata).
    """
    table = as_table(table)
    objectives = parse_objectives(objectives)
    uri = tracking_uri or table_tracking_uri(table)
    x_obj, _, _ = axes_objectives(objectives) if len(objectives) >= 2 else (objectives[0], None, ())
    values = objective_values(table, objectives)
    mask = pareto_mask(table, objectives) if front_only else np.all(np.isfinite(values), axis=1)
    rows = np.flatnonzero(mask)
    x_index = objectives.index(x_obj)
    rows = rows[np.argsort(values[rows, x_index] * (-1 if x_obj.maximise else 1), kind="stable")][:max_items]
    records = table.to_pylist()
    swept = swept_params(table)

    columns = 1 if len(rows) <= 3 else 2
    lines = max(math.ceil(len(rows) / columns), 1)
    fig = Figure(figsize=(max(6.5, 5.5 * columns), 2.6 * lines + 0.8), layout="constrained")
    if not len(rows):
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no trials with finite objective values", ha="center", va="center")
        return fig
    grid = fig.subplots(lines, columns, squeeze=False)
    axes = [grid[i // columns, i % columns] for i in range(len(rows))]  # row by row, the way it reads
    for index in range(len(rows), grid.size):
        grid[index // columns, index % columns].axis("off")
    for ax, row in zip(axes, rows, strict=True):
        record = records[row]
        picture = load_artifact_image(record["run_id"], uri, artifact)
        shown = {o.metric: values[row, i] for i, o in enumerate(objectives)}
        ssim = record.get(SSIM)
        if SSIM not in shown and ssim is not None and math.isfinite(ssim):  # what the reader sees: how alike
            shown[SSIM] = ssim
        numbers = "  ".join(f"{short_metric(metric)}={value:.3f}" for metric, value in shown.items())
        ax.set_title(f"{record.get('method')}  {describe_params(record, swept)}\n{numbers}", fontsize=9, loc="left")
        if picture is None:
            ax.text(0.5, 0.5, f"no {artifact} for run {record['run_id'][:8]}", ha="center", va="center", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.imshow(picture, interpolation="nearest")
        ax.axis("off")
    order = "\n(most private first, in reading order)" if len(objectives) >= 2 else ""
    fig.suptitle(f"Reconstructions at the front:\noriginals above, the strongest attacker's below{order}", fontsize=10)
    return fig
