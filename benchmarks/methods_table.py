"""Every method at two settings of its main knob against `none`, on Fashion-MNIST.

    python benchmarks/methods_table.py [--methods disco maxent ...] [--seeds 0 1 2]
                                       [--full] [--epochs CAP] [--set attacks.epochs=5]
                                       [--workers 2] [--stored-only]

Each cell is one trial of sweeps/quickstart.yaml (task `coarse`, private `class`, small_cnn
split 2, its 10k/2k slice unless `--full`) with the method and params below swapped in, run
once per seed (`train.seed`: defense training and the attack suite both; 3 seeds by
default). Prints a markdown table of utility/acc, privacy/leak_acc and the method's own
proxy adversary's leakage, recon/ssim, the white-box attacker's SSIM and the method's own
decoders' SSIM as `mean [95 % interval of the mean]` (over seeds, with the seeds' shared
test-set noise, `analysis.replicates.mean_interval`; one seed: its bootstrap interval),
client/gflops, the attack phase's seconds and how many seeds had every learned attacker
converge. Each method's pair of settings gets a verdict on leakage by the intervals, not by
the point values: "monotone" (the stronger setting's interval lies wholly below the
weaker's), "inverted" (wholly above) or "tied" (they overlap). Rows are also streamed as
JSON lines on stderr. Every finished trial is kept in `--results`
(`benchmarks/results/methods_table.jsonl`, `stored_trials`): a run stopped part-way resumes
where it stopped, `--workers 2` runs two trials at once (one core each), and `--stored-only`
prints the table of what is stored ("not run" cells), `--curves DIR` also plots each stored
trial's defense curves. Every defense trains to convergence (the spec's `train` section:
`trainables/convergence.py`), `none` under the same rule; the table shows its epochs and
whether it converged. The store also keeps the earlier runs of 2-epoch defenses (code
fingerprints 925e2d761046d1ca and 2bcf31856078e31f: check out c4315c9 to print them) and of
converged `none` and `maxent` at 3 seeds (ee112d3e87bef870: check out e105ea1); the
converged table of every learned method at seed 0 on the demo slice (0cc6b5d94c9ec818) prints
with `--seeds 0 --set dataset.train_size=2500 --set dataset.test_size=1000 --stored-only`
at 736b437; `none`, privacy_partitioning, adv_recon, deep_obfuscator, disco and DISCO's
same-budget controls again at 2c5ae59 (01b27173ea805422: the same defenses, the white-box
attacker at beta2 .8 and 1600 steps) print with the same flags and `--methods
privacy_partitioning adv_recon deep_obfuscator disco` at b357185; `none` and adv_recon with
its calibrated decoder (`params.decoder: mirror`, 4b8ab4be1bdf3ef9) with `--methods adv_recon`
at a50e366. With the patient leakage attackers (766e5299f3e12464, the current code), 3 seeds on
the demo slice: `none` and every learned method (maxent, privacy_partitioning, adv_recon,
deep_obfuscator, noisy_arl, disco) print at HEAD with `--seeds 0 1 2 --set
dataset.train_size=2500 --set dataset.test_size=1000 --stored-only` (DISCO's same-budget
controls and the non-learned methods are not stored at this code).

Same-budget controls: a method that declares a `control` (`Method.control`; DISCO:
`random_pruning`) is also run beside it at each value of the shared knob in
`CONTROL_SETTINGS` (DISCO at R 0.4 and 0.6, rho 0.1, split 2), one row pair per value, with a
verdict on leakage and on SSIM by the intervals ("method lower", "control lower", "tied").
`--controls-only` runs just that table.

The reference is `none` at the method's own release point: split 2 for feature-level
methods, split "0" (the raw image released, the whole backbone on the server) for the
image-level ones (`input_noise`, `dp_laplace`, `dp_pixelation`), whose attackers see images.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import stored_trials

from analysis.controls import lower
from analysis.replicates import mean_interval
from trainables.methods import method_class
from trainables.models import INPUT_SPLIT

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
COLUMNS = (
    "utility/acc", "privacy/leak_acc", "privacy/proxy_leak_acc", "recon/ssim", "recon/ssim/whitebox", "recon/proxy_ssim",
    "client/gflops", "time/attack_s",
)
CONVERGED = "attack/converged/"
AT_CAP = "at cap"
DEFENSE_CONVERGED = "defense converged"  # seeds whose defense stopped by the convergence rule, not at train.epochs
STRENGTH = ("train/epochs_run", DEFENSE_CONVERGED, "attackers converged", AT_CAP)  # did both sides converge
LEAK = "privacy/leak_acc"

# method -> (knob, weaker params, stronger params): "stronger" = more privacy by the paper.
SETTINGS: dict[str, tuple[str, dict, dict]] = {
    "noisy_arl": ("σ", {"sigma": 0.5}, {"sigma": 8.0}),
    "activation_noise": ("σ", {"sigma": 0.5}, {"sigma": 8.0}),
    "input_noise": ("σ", {"sigma": 0.05}, {"sigma": 0.5}),
    "random_pruning": ("R", {"pruning_ratio": 0.2}, {"pruning_ratio": 0.8}),
    "disco": ("ρ", {"rho": 10.0}, {"rho": 0.1}),
    "maxent": ("α", {"alpha": 0.1}, {"alpha": 0.9}),
    "dp_laplace": ("ε", {"epsilon": 20.0}, {"epsilon": 2.0}),
    "dp_pixelation": ("ε", {"epsilon": 5.0}, {"epsilon": 0.5}),
    "privacy_partitioning": ("λ", {"lambda": 0.1}, {"lambda": 10.0}),
    "adv_recon": ("λ1", {"lambda1": 0.1}, {"lambda1": 10.0}),
    "deep_obfuscator": ("λ1", {"lambda1": 1.0}, {"lambda1": 10.0}),
}

# method -> (its other params, the shared knob, the knob's values) for the same-budget control
# table; rho 0.1 is DISCO's setting that weighs privacy most of the two above.
CONTROL_SETTINGS: dict[str, tuple[dict, str, tuple[float, ...]]] = {
    "disco": ({"rho": 0.1}, "pruning_ratio", (0.4, 0.6)),
}
CONTROL_COLUMNS = ("utility/acc", "privacy/leak_acc", "recon/ssim", "recon/ssim/whitebox", "time/attack_s")

Cell = list[dict[str, float]]  # one metrics dict per seed


def release_split(method: str) -> str:
    """The split a method releases at under the spec's split 2 (image-level methods: "0")."""
    return INPUT_SPLIT if method_class(method).releases == "image" else "2"


def run(method: str, params: dict, seed: int, args: argparse.Namespace, split: str = "2") -> dict[str, float] | None:
    """One trial's metrics from the store (`args.store`: same overrides, same code); None when
    it is not stored yet, and its overrides are then added to `args.wanted`."""
    overrides = [
        f"method={method}",
        "search_space=null",
        f"params={json.dumps(params)}",
        *([f"train.epochs={args.epochs}"] if args.epochs is not None else []),
        f"train.seed={seed}",
        f"model.split={split}",
        *args.set,
    ]
    if args.full:
        overrides += ["dataset.train_size=null", "dataset.test_size=null"]
    metrics = args.store.get(overrides)
    if metrics is None:
        args.wanted.append(overrides)
        return None
    if getattr(args, "curves", None):
        write_curves(args, method, overrides, f"{method}-{'-'.join(f'{k}{v}' for k, v in params.items())}-split{split}-seed{seed}", metrics)
    metrics = dict(metrics)
    capped = sorted(k.removeprefix(CONVERGED) for k, v in metrics.items() if k.startswith(CONVERGED) and v != 1)
    metrics["attackers converged"] = float(not capped)
    metrics[AT_CAP] = capped
    metrics[DEFENSE_CONVERGED] = metrics.get("train/converged", math.nan)
    shown = [*COLUMNS, *STRENGTH, *(c + end for c in COLUMNS for end in (":ci95_lo", ":ci95_hi"))]
    row = {"method": method, "split": split, "seed": seed, **params, **{c: metrics.get(c, math.nan) for c in shown}}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return metrics


def write_curves(args: argparse.Namespace, method: str, overrides: list[str], name: str, metrics: dict[str, float]) -> None:
    """The stored trial's defense curves as `<args.curves>/<name>.png` (none for a trial stored without them)."""
    from analysis.curves import epoch_series, plot_defense_curves, stop_label

    history = args.store.curves.get(args.store.key(overrides))
    if not history:
        return
    converged = metrics.get("train/converged")
    title = f"{name}: {stop_label(len(history), converged)}"
    figure = plot_defense_curves(epoch_series(history), title, method_class(method).phases, converged)
    args.curves.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.curves / f"{name}.png", dpi=110)


def run_seeds(method: str, params: dict, args: argparse.Namespace, split: str = "2") -> Cell:
    """The cell's seeds that are stored."""
    return [metrics for seed in args.seeds if (metrics := run(method, params, seed, args, split)) is not None]


def interval(cell: Cell, column: str) -> tuple[float, float, float]:
    """(mean, low, high) of a column over the cell's seeds."""
    values = np.array([m.get(column, math.nan) for m in cell], dtype=float)
    lows = np.array([m.get(column + ":ci95_lo", math.nan) for m in cell], dtype=float)
    highs = np.array([m.get(column + ":ci95_hi", math.nan) for m in cell], dtype=float)
    mean, _, low, high = mean_interval(values, lows, highs)
    return mean, low, high


def summary(cell: Cell, column: str) -> str:
    if not cell:
        return "not run"
    values = [m.get(column, math.nan) for m in cell]
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return "–"
    if column in ("attackers converged", DEFENSE_CONVERGED):
        return f"{sum(values):.0f}/{len(values)}"
    if column == AT_CAP:  # which attackers hit attacks.epochs in some seed: their numbers are lower bounds
        return ", ".join(sorted({name for names in values for name in names})) or "none"
    if column.startswith(("client/", "time/", "train/")):
        return f"{statistics.fmean(values):.4g}"
    mean, low, high = interval(cell, column)
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]" if math.isfinite(low) else f"{mean:.4f}"


def compare(first: Cell, second: Cell, column: str) -> str:
    """"first" or "second": the cell lower on `column` beyond the noise (its interval wholly
    below the other's, `analysis.controls.lower`, as the summary's control pairs); "tied"
    when they overlap; "unknown" without both intervals (or a cell not run)."""
    if not first or not second:
        return "unknown"
    (_, first_low, first_high), (_, second_low, second_high) = interval(first, column), interval(second, column)
    if not all(math.isfinite(v) for v in (first_low, first_high, second_low, second_high)):
        return "unknown"
    lowest = lower((np.array([first_low, second_low]), np.array([first_high, second_high])), 0, 1)
    return {0: "first", 1: "second", None: "tied"}[lowest]


def lower_of(method: str, cell: Cell, control: str, control_cell: Cell, column: str) -> str:
    """Which of the two is lower on `column` beyond the noise, or tied."""
    outcome = compare(cell, control_cell, column)
    return {"first": f"{method} lower", "second": f"{control} lower"}.get(outcome, outcome)


def control_table(methods: list[str], args: argparse.Namespace) -> None:
    """Each method beside its same-budget control at every value of the shared knob."""
    print(f"\nsame-budget controls; seeds {args.seeds}; mean [95 % interval of the mean]\n")
    print("| R | method | " + " | ".join((*CONTROL_COLUMNS, *STRENGTH)) + " | leakage | SSIM |")
    print("|---|---|" + "---|" * (len(CONTROL_COLUMNS) + len(STRENGTH) + 2))
    for method in methods:
        control = method_class(method).control
        own, knob, values = CONTROL_SETTINGS[method]
        for value in values:
            cell = run_seeds(method, {**own, knob: value}, args)
            control_cell = run_seeds(control.method, {knob: value}, args)
            verdicts = [lower_of(method, cell, control.method, control_cell, c) for c in (LEAK, "recon/ssim")]
            for name, params, seeds in ((method, own, cell), (control.method, {}, control_cell)):
                shown = ", ".join(f"{k}={v}" for k, v in params.items())
                cells = [summary(seeds, c) for c in (*CONTROL_COLUMNS, *STRENGTH)]
                tail = " | ".join(verdicts) if name == method else " | "
                label = f"{name}{' (' + shown + ')' if shown else ''}{seeds_note(seeds, args)}"
                print(f"| {value} | {label} | " + " | ".join(cells) + f" | {tail} |", flush=True)


def verdict(weaker: Cell, stronger: Cell) -> str:
    """Does the stronger setting leak less, beyond the noise?"""
    outcome = compare(stronger, weaker, LEAK)
    return {"first": "monotone", "second": "inverted"}.get(outcome, outcome)


def seeds_note(cell: Cell, args: argparse.Namespace) -> str:
    """" (k of n seeds)" for a cell with some of its seeds stored, else ""."""
    return f" ({len(cell)} of {len(args.seeds)} seeds)" if 0 < len(cell) < len(args.seeds) else ""


def print_row(method: str, setting: str, cell: Cell, args: argparse.Namespace, leakage_verdict: str = "") -> None:
    cells = [summary(cell, c) for c in (*COLUMNS, *STRENGTH)]
    print(f"| {method} | {setting}{seeds_note(cell, args)} | " + " | ".join(cells) + f" | {leakage_verdict} |", flush=True)


def tables(args: argparse.Namespace) -> None:
    """Print the tables from the stored trials; `args.wanted` collects the trials they lack."""
    with_controls = [m for m in args.methods if m in CONTROL_SETTINGS]
    if args.controls_only:
        control_table(with_controls, args)
        return
    splits = {method: release_split(method) for method in args.methods}
    baseline_splits = sorted(set(splits.values()), reverse=True) if args.baseline else []
    baselines = {split: run_seeds("none", {}, args, split) for split in baseline_splits}
    print(f"\nseeds {args.seeds}; mean [95 % interval of the mean]\n")
    print("| method | setting | " + " | ".join((*COLUMNS, *STRENGTH)) + " | leakage verdict |")
    print("|---|---|" + "---|" * (len(COLUMNS) + len(STRENGTH) + 1))
    for split, cell in baselines.items():
        print_row("none", f"split {split}", cell, args)
    verdicts = {}
    for method in args.methods:
        knob, weaker, stronger = SETTINGS[method]
        cells = [run_seeds(method, params, args, splits[method]) for params in (weaker, stronger)]
        verdicts[method] = verdict(*cells)
        for params, cell in zip((weaker, stronger), cells, strict=True):
            setting = ", ".join(f"{k}={v}" for k, v in params.items())
            print_row(method, setting, cell, args, verdicts[method] if params is stronger else "")
    for name in ("monotone", "inverted", "tied", "unknown"):
        print(f"{name}: {', '.join(m for m, v in verdicts.items() if v == name) or 'none'}")
    control_table(with_controls, args)


def run_then_print(tables: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> None:
    """Run the trials that `tables` needs and the store lacks (unless `--stored-only`; the
    tables printed to nowhere find them), then print the tables from the store; when trials
    failed, the tables of those that did not come first, then the failure."""
    failure = None
    if not args.stored_only:
        plan = argparse.Namespace(**{**vars(args), "wanted": []})
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tables(plan)
        try:
            stored_trials.run_missing(args.store, SPEC, plan.wanted, args.workers)
        except RuntimeError as error:
            failure = error
    args.wanted = []
    tables(args)
    if args.wanted:
        print(f"{len(args.wanted)} trial(s) not run yet: their cells read 'not run'", file=sys.stderr)
    if failure is not None:
        raise failure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="cap on defense epochs per phase; default: the spec's")
    parser.add_argument("--full", action="store_true", help="full train/test splits instead of the 10k/2k slice")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True, help="run `none` too")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra spec override, e.g. attacks.epochs=5")
    parser.add_argument("--controls-only", action="store_true", help="only the same-budget control table")
    parser.add_argument("--curves", type=Path, metavar="DIR",
                        help="also write each stored trial's defense training curves there (analysis.curves), one PNG a trial")
    stored_trials.add_arguments(parser, "methods_table")
    args = parser.parse_args(argv)
    args.store = stored_trials.open_store(args, SPEC)
    run_then_print(tables, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
