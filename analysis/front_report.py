"""A sweep's front as files and in MLflow: what `python -m analysis pareto` writes, and what the
launcher writes when a launch ends (finished or stopped).

Files, in one folder: front.parquet, front.csv, summary.md, pareto.png/.pdf,
hypervolume.png/.pdf, gallery.png/.pdf when the front's runs logged reconstructions, and
pareto.html with `html`. Each figure is written twice: PNG for screens and the MLflow UI,
PDF (vector) for a paper.

In MLflow (`log_front_report`): the files go to the parent runs given, the front's
child runs (every seed replicate of a front configuration) get `privsweep.pareto=true` and
the other trials of the table lose it, and each parent run gets `FRONT_METRICS`: the
combined front's hypervolume with its 95 % interval (`analysis.intervals`), the front's size
and the finished trials behind it, so the parent row of the runs table carries numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv

from analysis.intervals import hypervolume_interval
from analysis.objectives import Objective
from analysis.pareto import pareto_front, resolve_reference
from analysis.replicates import replicate_run_ids
from analysis.report import summary_markdown
from analysis.runs import LaunchProgress, save_parquet
from trainables.schema import INTERVAL_HIGH, INTERVAL_LOW, PARETO_TAG, tag_is
from trainables.tracking import ParentRun, tracking_client, with_retries

FIGURE_FORMATS = ("png", "pdf")
HYPERVOLUME, FRONT_SIZE, TRIALS = "front/hypervolume", "front/size", "front/trials"
FRONT_METRICS = (HYPERVOLUME, f"{HYPERVOLUME}{INTERVAL_LOW}", f"{HYPERVOLUME}{INTERVAL_HIGH}", FRONT_SIZE, TRIALS)


@dataclass
class FrontReport:
    folder: Path
    files: list[Path]
    summary: str
    front_run_ids: set[str]  # every replicate run of each front configuration
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def plot(self) -> Path:
        return self.folder / "pareto.png"


def save_figure(figure: Any, stem: Path, dpi: int) -> list[Path]:
    """`stem`.png and `stem`.pdf."""
    paths = [stem.with_suffix(f".{suffix}") for suffix in FIGURE_FORMATS]
    for path in paths:
        figure.savefig(path, dpi=dpi)
    return paths


def write_front_report(
    table: Any,
    objectives: tuple[Objective, ...],
    folder: Path,
    tracking_uri: str,
    *,
    reference: Any = None,
    launches: Sequence[LaunchProgress] = (),
    html: bool = False,
) -> FrontReport:
    """The front files of `table` (finished trials, replicates grouped) in `folder`.
    `reference`: the hypervolume reference point, default `analysis.pareto.default_reference`."""
    from analysis.gallery import plot_gallery
    from analysis.plots import plot_front, plot_hypervolume, plot_interactive

    folder.mkdir(parents=True, exist_ok=True)
    point = resolve_reference(table, objectives, reference)
    front = pareto_front(table, objectives)
    save_parquet(front, folder / "front.parquet")
    pacsv.write_csv(front, folder / "front.csv")
    summary = summary_markdown(table, objectives, reference, launches=launches)
    (folder / "summary.md").write_text(summary)
    files = [folder / "front.csv", folder / "summary.md"]
    files += save_figure(plot_front(table, objectives, reference=reference), folder / "pareto", dpi=150)
    files += save_figure(plot_hypervolume(table, objectives, reference=point), folder / "hypervolume", dpi=120)
    gallery = plot_gallery(table, objectives, tracking_uri=tracking_uri)
    if any(ax.images for ax in gallery.axes):
        files += save_figure(gallery, folder / "gallery", dpi=150)
    if html:
        try:
            plot_interactive(table, objectives, folder / "pareto.html")
            files.append(folder / "pareto.html")
        except ImportError as error:
            print(f"warning: no pareto.html: {error}", file=sys.stderr)
    volume, low, high = hypervolume_interval(table, objectives, point)
    metrics = {HYPERVOLUME: volume, f"{HYPERVOLUME}{INTERVAL_LOW}": low, f"{HYPERVOLUME}{INTERVAL_HIGH}": high,
               FRONT_SIZE: float(front.num_rows), TRIALS: float(table.num_rows)}
    metrics = {key: value for key, value in metrics.items() if np.isfinite(value)}
    return FrontReport(folder, files, summary, set(replicate_run_ids(front)), metrics)


def log_front_report(report: FrontReport, table: Any, tracking_uri: str, parents: Sequence[str]) -> None:
    """The files and `FRONT_METRICS` to each parent run; the pareto tag on exactly the
    front's runs among the table's trials."""
    client = tracking_client(tracking_uri)
    for parent in parents:
        for path in report.files:
            with_retries(lambda p=parent, f=path: client.log_artifact(p, str(f)))
        ParentRun(client, parent).log(report.metrics)
    for run_id in sorted(report.front_run_ids):
        with_retries(lambda r=run_id: client.set_tag(r, PARETO_TAG, "true"))
    # Trials of this table tagged by an earlier, different front lose the tag.
    experiment_ids = [client.get_experiment_by_name(name).experiment_id
                      for name in sorted(set(table.column("experiment").to_pylist()))]
    tagged = with_retries(lambda: client.search_runs(experiment_ids, tag_is(PARETO_TAG, "true"), max_results=50000))
    in_table = set(replicate_run_ids(table))
    for run in tagged:
        if run.info.run_id in in_table and run.info.run_id not in report.front_run_ids:
            with_retries(lambda r=run.info.run_id: client.delete_tag(r, PARETO_TAG))


def parent_runs(table: Any) -> list[str]:
    """The parent (launch) runs of the table's trials."""
    return sorted({p for p in table.column("parent_run_id").to_pylist() if p})
