"""`python -m analysis pareto --experiment NAME [--tracking-uri URI] [--out DIR] [--objectives ...]`
`python -m analysis curves --run RUN_ID [--tracking-uri URI] [--out DIR]`

Writes front.parquet, front.csv, pareto.png, hypervolume.png, summary.md (and gallery.png when the runs have
reconstructions, pareto.html with --html) to --out, prints the summary, logs pareto.png,
front.csv and summary.md to the sweep's parent run(s) and tags the combined front's child
runs `privsweep.pareto=true` (removing the tag from the other trials it read). Seed
replicates of one configuration are one point, their mean (`analysis.replicates`), and every
replicate run of a front configuration gets the tag.

`curves` writes `curves-<run id>.png` to --out (default out/curves): a trial's defense
training curves, validation utility and proxy scores beside the training losses, its phases
shaded and the epoch where training stopped marked converged or cap (`analysis.curves`).
Exit codes: 0 ok, 2 bad input (one-paragraph message, no traceback), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv

from analysis.errors import AnalysisInputError
from analysis.objectives import DEFAULT_OBJECTIVES, Objective, parse_objectives
from analysis.pareto import objective_values, pareto_front, pareto_mask, resolve_reference
from analysis.replicates import replicate_run_ids
from analysis.report import summary_markdown
from analysis.runs import (
    launch_progress,
    load_objectives,
    load_runs,
    resolve_tracking_uri,
    save_parquet,
)
from trainables.schema import PARETO_TAG, tag_is
from trainables.tracking import tracking_client, with_retries


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description="Pareto fronts of privsweep sweeps.")
    commands = parser.add_subparsers(dest="command", required=True)
    pareto = commands.add_parser("pareto", help="front, hypervolume, plots and summary of a sweep's trials",
                                 description=__doc__.split("\n\n")[1])
    pareto.add_argument("--experiment", action="append", required=True, metavar="NAME",
                        help="the sweep's name (its MLflow experiment); repeat to combine several sweeps")
    pareto.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite mlflow.db in $PRIVSWEEP_HOME or the repo)")
    pareto.add_argument("--out", metavar="DIR", help="output folder (default: out/<experiment>)")
    pareto.add_argument("--objectives", nargs="+", metavar="METRIC:MODE",
                        help="e.g. utility/acc:max privacy/leak_acc:min (default: the sweep's own objectives)")
    pareto.add_argument("--reference", nargs="+", type=float, metavar="VALUE",
                        help="hypervolume reference point, one value per objective (default: see analysis.pareto.default_reference)")
    pareto.add_argument("--launch", metavar="ID", help="only this launch's trials (default: every launch)")
    pareto.add_argument("--html", action="store_true", help="also write an interactive pareto.html (needs plotly)")
    pareto.add_argument("--no-mlflow", action="store_true", help="do not log to the parent run or tag the front's runs")
    curves = commands.add_parser("curves", help="a trial's defense training curves, its convergence epoch marked")
    curves.add_argument("--run", required=True, metavar="RUN_ID", help="the trial's MLflow run id")
    curves.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: as for pareto)")
    curves.add_argument("--out", metavar="DIR", default="out/curves", help="output folder (default: out/curves)")
    return parser


def curves_command(args: argparse.Namespace) -> int:
    from analysis.curves import plot_defense_curves, run_series
    from trainables.methods import METHODS

    uri = resolve_tracking_uri(args.tracking_uri)
    series, info = run_series(uri, args.run)
    cls = METHODS.get(info["method"])
    converged = info["metrics"].get("train/converged")
    epochs = info["metrics"].get("train/epochs_run")
    stop = "" if converged is None else f", {epochs:.0f} epochs, {'converged' if converged == 1 else 'stopped at the cap'}"
    figure = plot_defense_curves(series, f"{info['name']}{stop}", cls.phases if cls else (), converged)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"curves-{args.run}.png"
    figure.savefig(path, dpi=130)
    print(f"Wrote {path}")
    return 0


def resolve_objectives(args: argparse.Namespace, uri: str) -> tuple[Objective, ...]:
    if args.objectives:
        return parse_objectives(args.objectives)
    return load_objectives(args.experiment[0], uri, args.launch) or DEFAULT_OBJECTIVES


def log_to_mlflow(table: Any, front_ids: set[str], uri: str, files: Sequence[Path]) -> list[str]:
    """Artifacts to the parent runs of the table's trials; the pareto tag on exactly the front."""
    client = tracking_client(uri)
    parents = sorted({p for p in table.column("parent_run_id").to_pylist() if p})
    for parent in parents:
        for path in files:
            with_retries(lambda p=parent, f=path: client.log_artifact(p, str(f)))
    for run_id in sorted(front_ids):
        with_retries(lambda r=run_id: client.set_tag(r, PARETO_TAG, "true"))
    # Trials of this table tagged by an earlier, different front lose the tag.
    experiment_ids = [client.get_experiment_by_name(name).experiment_id
                      for name in sorted(set(table.column("experiment").to_pylist()))]
    tagged = with_retries(lambda: client.search_runs(experiment_ids, tag_is(PARETO_TAG, "true"), max_results=50000))
    in_table = set(replicate_run_ids(table))
    for run in tagged:
        if run.info.run_id in in_table and run.info.run_id not in front_ids:
            with_retries(lambda r=run.info.run_id: client.delete_tag(r, PARETO_TAG))
    return parents


def pareto_command(args: argparse.Namespace) -> int:
    uri = resolve_tracking_uri(args.tracking_uri)
    objectives = resolve_objectives(args, uri)
    table = load_runs(args.experiment, uri, launch=args.launch, group=True)
    names = ", ".join(repr(e) for e in args.experiment)
    if table.num_rows == 0:
        raise AnalysisInputError(
            f"Experiment {names} has no finished trials{' in launch ' + repr(args.launch) if args.launch else ''} "
            f"in {uri}: every trial failed or is still running. Wait for the sweep to finish, look at the failed "
            "runs' `privsweep.error` tag in the MLflow UI, or pick another --experiment/--launch."
        )
    values = objective_values(table, objectives)  # raises for an unknown objective metric
    if not np.all(np.isfinite(values), axis=1).any():
        raise AnalysisInputError(
            f"No finished trial of {names} has a finite value for every objective "
            f"({', '.join(str(o) for o in objectives)}); choose objectives the trials logged with --objectives."
        )
    reference = resolve_reference(table, objectives, args.reference)
    out = Path(args.out) if args.out else Path("out") / "+".join(args.experiment)
    out.mkdir(parents=True, exist_ok=True)

    front = pareto_front(table, objectives)
    save_parquet(front, out / "front.parquet")
    pacsv.write_csv(front, out / "front.csv")
    launches = launch_progress(args.experiment, uri, args.launch)
    summary = summary_markdown(table, objectives, None if args.reference is None else reference, launches=launches)
    (out / "summary.md").write_text(summary)

    from analysis.gallery import plot_gallery
    from analysis.plots import plot_front, plot_hypervolume, plot_interactive

    figure = plot_front(table, objectives, reference=None if args.reference is None else reference)
    figure.savefig(out / "pareto.png", dpi=150)
    plot_hypervolume(table, objectives, reference=reference).savefig(out / "hypervolume.png", dpi=120)
    files = [out / "pareto.png", out / "hypervolume.png", out / "front.csv", out / "summary.md"]
    gallery = plot_gallery(table, objectives, tracking_uri=uri)
    if any(ax.images for ax in gallery.axes):
        gallery.savefig(out / "gallery.png", dpi=120)
        files.append(out / "gallery.png")
    if args.html:
        try:
            plot_interactive(table, objectives, out / "pareto.html")
            files.append(out / "pareto.html")
        except ImportError as error:
            print(f"warning: no pareto.html: {error}", file=sys.stderr)

    print(summary)
    if not args.no_mlflow:
        parents = log_to_mlflow(table, set(replicate_run_ids(front)), uri, files)
        print(f"Logged {', '.join(f.name for f in files)} to parent run(s) {', '.join(parents) or '(none)'}; "
              f"tagged the {len(replicate_run_ids(front))} run(s) of {front.num_rows} front configuration(s) {PARETO_TAG}=true (filter in the MLflow UI: "
              f"tags.`{PARETO_TAG}` = 'true').")
    mask = pareto_mask(table, objectives)
    print(f"Wrote {out}/front.parquet, front.csv, pareto.png, hypervolume.png, summary.md ({int(mask.sum())} front trials of {table.num_rows}).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "pareto":
            return pareto_command(args)
        if args.command == "curves":
            return curves_command(args)
    except AnalysisInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 1
