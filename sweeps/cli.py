"""Command line: `python -m sweeps validate|trial|run|confirm|reference|ui|dashboard`.

Exit codes: 0 success, 2 invalid input (one paragraph naming the field or file and the
fix, never a traceback), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from sweeps.servers import DASHBOARD_PORT, UI_PORT
from trainables.errors import InputError

log = logging.getLogger("sweeps")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 already; keep its message to one line
        self.print_usage(sys.stderr)
        raise SystemExit(f"error: {message}") from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse exits 2 naming the flag otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec YAML, e.g. sweeps/quickstart.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a spec field (value parsed as YAML)")
    parser.add_argument("--smoke", action="store_true", help="shrink to a few minutes: tiny data, 1 epoch, 2 trials, its own experiment <name>/smoke")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m sweeps", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="parse and check a spec, print it resolved")
    _spec_arguments(validate)
    trial = commands.add_parser("trial", help="run one configuration in-process, no Ray")
    _spec_arguments(trial)
    trial.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    trial.add_argument("--out", type=Path, help="write config.yaml, metrics.json, reconstructions.png, client.pt here")
    run = commands.add_parser("run", help="run the sweep with Ray Tune + Optuna, tracked in MLflow")
    _spec_arguments(run)
    run.add_argument("--resume", action="store_true", help="continue the last interrupted launch of this spec")
    run.add_argument("--num-samples", type=positive_int, help="override search.num_samples")
    confirm = commands.add_parser("confirm", help="re-run a finished sweep's configurations under more seeds")
    _spec_arguments(confirm)
    confirm.add_argument("--seeds", type=positive_int, default=3, help="seeds each configuration should have in all (default 3)")
    confirm.add_argument("--front-only", action="store_true", help="only the configurations on the front of the seed means")
    confirm.add_argument("--controls", action="store_true",
                         help="also run each configuration's same-budget control (DISCO: random_pruning at the same R and split)")
    confirm.add_argument("--resume", action="store_true", help="continue the last interrupted confirm launch")
    commands.add_parser("reference", help="print the spec reference (docs/spec-reference.md) from the spec models")
    ui = commands.add_parser("ui", help="open the MLflow UI on a store (127.0.0.1)")
    ui.add_argument("--port", type=int, default=UI_PORT, help=f"the UI's port on 127.0.0.1 (default {UI_PORT})")
    ui.add_argument("--tracking-uri", metavar="URI", help="the MLflow store (default: $MLFLOW_TRACKING_URI, else mlflow.db in $PRIVSWEEP_HOME or the repo)")
    dashboard = commands.add_parser("dashboard", help="open Optuna Dashboard on the sweeps' studies (127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=DASHBOARD_PORT, help=f"the dashboard's port on 127.0.0.1 (default {DASHBOARD_PORT})")
    dashboard.add_argument("--storage", metavar="URL", help="the Optuna storage (default: $PRIVSWEEP_STUDY_STORAGE, else optuna.db in the home folder)")
    return parser


def cmd_validate(args) -> int:
    """Every check `run` makes before it starts Ray, except those that need the data files
    (a cluster spec is validated where its dataset is not)."""
    from sweeps.launcher import check_launchable
    from sweeps.spec import load_spec

    spec = load_spec(args.spec, args.set, args.smoke)
    check_launchable(spec)
    resolved = spec.model_dump(mode="json", by_alias=True)
    space = spec.space()
    resolved["search_space"] = {
        (f"{method}:{path}" if method else path): {d.kind: list(d.values)} for method, path, d in space.items()
    }
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    print(f"# valid: {args.spec} ({len(space)} swept hyperparameters)", file=sys.stderr)
    return 0


def cmd_trial(args) -> int:
    from sweeps.spec import load_spec
    from trainables.artifacts import write_artifacts
    from trainables.trial import Trial

    spec = load_spec(args.spec, args.set, args.smoke)
    trial = Trial(spec.trial_config())

    def on_epoch(epoch: int, metrics: dict) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        print(f"epoch {epoch}/{spec.train.epochs}: {shown}", file=sys.stderr)

    metrics, report = trial.run(on_epoch)
    if args.out:
        write_artifacts(args.out, trial.config, metrics, report, trial.method, trial.history)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        width = max(map(len, metrics))
        for key in sorted(metrics):
            print(f"{key:<{width}}  {metrics[key]:.4f}")
    return 0


def cmd_run(args) -> int:
    from sweeps.launcher import launch

    return launch(args)


def cmd_confirm(args) -> int:
    from sweeps.confirm import confirm

    return confirm(args)


def cmd_reference(args) -> int:
    from sweeps.reference import spec_reference

    print(spec_reference(), end="")
    return 0


def cmd_ui(args) -> int:
    from sweeps.servers import open_ui

    return open_ui(args.port, args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))


def cmd_dashboard(args) -> int:
    from sweeps.servers import open_dashboard
    from sweeps.study_url import study_storage_url

    return open_dashboard(args.port, args.storage or study_storage_url())


COMMANDS = {"validate": cmd_validate, "trial": cmd_trial, "run": cmd_run, "confirm": cmd_confirm,
            "reference": cmd_reference, "ui": cmd_ui, "dashboard": cmd_dashboard}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Tune's TensorBoard logger renames every `<key>:ci95_lo` (a colon) with one INFO line per
    # key; MLflow keeps the real names.
    logging.getLogger("tensorboardX").setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
            return 2
        return int(exit_.code or 0)
    try:
        return COMMANDS[args.command](args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
