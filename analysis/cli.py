"""`python -m analysis pareto --experiment NAME [--tracking-uri URI] [--out DIR] [--objectives ...]`
`python -m analysis curves --run RUN_ID [--tracking-uri URI] [--out DIR]`

Writes the front report (`analysis.front_report`: front.parquet, front.csv, summary.md,
pareto, hypervolume and, when the runs have reconstructions, gallery figures as PNG and PDF;
pareto.html with --html) to --out, prints the summary, logs the files and the front's
hypervolume with its interval, size and trials to the sweep's parent run(s) and tags the
combined front's child runs `privsweep.pareto=true` (removing the tag from the other trials
it read). The launcher writes the same report when a launch ends. Seed replicates of one
configuration are one point, their mean (`analysis.replicates`), and every replicate run of a
front configuration gets the tag.

`curves` writes `curves-<run id>.png` and `.pdf` to --out (default out/curves): a trial's defense
training curves, validation utility and proxy scores beside the training losses, its phases
shaded and the epoch where training stopped marked converged or cap, and below them the
attackers' validation curves with their kept epochs (`analysis.curves`).
Exit codes: 0 ok, 2 bad input (one-paragraph message, no traceback), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from analysis.errors import AnalysisInputError
from analysis.front_report import (
    FRONT_SIZE,
    log_front_report,
    parent_runs,
    save_figure,
    write_front_report,
)
from analysis.objectives import DEFAULT_OBJECTIVES, Objective, parse_objectives
from analysis.pareto import objective_values, resolve_reference
from analysis.runs import launch_progress, load_objectives, load_runs, resolve_tracking_uri
from trainables.schema import PARETO_TAG


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
    from analysis.curves import kept_epochs, plot_defense_curves, run_series, stop_label
    from trainables.methods import METHODS

    uri = resolve_tracking_uri(args.tracking_uri)
    series, info = run_series(uri, args.run)
    cls = METHODS.get(info["method"])
    converged = info["metrics"].get("train/converged")
    epochs = info["metrics"].get("train/epochs_run")
    stop = "" if converged is None else f", {stop_label(epochs, converged)}"
    figure = plot_defense_curves(series, f"{info['name']}{stop}", cls.phases if cls else (), converged,
                                 kept_epochs(info["metrics"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = save_figure(figure, out / f"curves-{args.run}", dpi=130)
    print(f"Wrote {', '.join(map(str, paths))}")
    return 0


def resolve_objectives(args: argparse.Namespace, uri: str) -> tuple[Objective, ...]:
    if args.objectives:
        return parse_objectives(args.objectives)
    return load_objectives(args.experiment[0], uri, args.launch) or DEFAULT_OBJECTIVES


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
    reference = None if args.reference is None else resolve_reference(table, objectives, args.reference)
    out = Path(args.out) if args.out else Path("out") / "+".join(args.experiment)
    launches = launch_progress(args.experiment, uri, args.launch)
    report = write_front_report(table, objectives, out, uri, reference=reference, launches=launches, html=args.html)
    print(report.summary)
    if not args.no_mlflow:
        parents = parent_runs(table)
        log_front_report(report, table, uri, parents)
        print(f"Logged {', '.join(f.name for f in report.files)} and {', '.join(report.metrics)} to parent run(s) "
              f"{', '.join(parents) or '(none)'}; tagged the {len(report.front_run_ids)} run(s) of the front "
              f"{PARETO_TAG}=true (filter in the MLflow UI: tags.`{PARETO_TAG}` = 'true').")
    print(f"Wrote {out}/front.parquet and {', '.join(f.name for f in report.files)} "
          f"({int(report.metrics[FRONT_SIZE])} front trials of {table.num_rows}).")
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
