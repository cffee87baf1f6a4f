"""Scratch against pretrained: every learned defense from random weights and from the task model.

    python benchmarks/init_comparison.py [--methods disco maxent ...] [--seeds 0 1 2]
                                         [--set dataset.train_size=2500 ...] [--workers 2]
                                         [--stored-only]

Each learned method (one with a game against its own adversaries: `Method.game_phases`) at
its stronger setting of `methods_table.SETTINGS`, split 2, is trained twice: `train.init:
scratch` (every network from random weights) and `train.init: pretrained` (the client and the
deployed server start from the cached task model trained without defense,
`trainables/pretraining.py`; the phases it stands in for, `Method.pretrained_phases`, are
skipped). Both under the spec's convergence rule, both judged by the full converged attack
suite. The trials are methods-table cells (sweeps/quickstart.yaml, same overrides) and live
in its store (`benchmarks/results/methods_table.jsonl`): a scratch trial is the methods
table's own, a pretrained one is the same cell with `train.init=pretrained`.

Prints per method and start: defense epochs run and whether the rule stopped them, the task
model's epochs (pretrained), utility, the fresh leakage and SSIM as `mean [95 % interval]`,
the white-box SSIM, the method's own proxy scores, the training seconds; then which start
leaves the lower leakage, the lower SSIM (the strongest attacker's) and the lower white-box
SSIM beyond the noise (`methods_table.compare`: intervals wholly apart) or "tied", and the
start the method's paper spec uses (`sweeps/<method>.yaml`, `train.init`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import methods_table as table
import stored_trials
import yaml

from trainables.methods import method_class

SPECS = Path(__file__).resolve().parent.parent / "sweeps"
COLUMNS = ("train/epochs_run", table.DEFENSE_CONVERGED, "train/task_model/epochs_run", "utility/acc", "privacy/leak_acc",
           "recon/ssim", "recon/ssim/whitebox", "privacy/proxy_leak_acc", "recon/proxy_ssim", "time/train_s")
STARTS = ("scratch", "pretrained")
VERDICTS = ("privacy/leak_acc", "recon/ssim", "recon/ssim/whitebox")


def learned_methods() -> list[str]:
    return sorted(m for m in table.SETTINGS if method_class(m).game_phases)


def paper_init(method: str) -> str:
    """The start the method's own spec uses (the TrainConfig default when it has no spec)."""
    path = SPECS / f"{method}.yaml"
    spec = yaml.safe_load(path.read_text()) if path.exists() else {}
    return (spec.get("train") or {}).get("init", "scratch")


def cells(method: str, args: argparse.Namespace) -> dict[str, table.Cell]:
    """Each start's stored seeds (missing ones are added to `args.wanted`)."""
    _, _, stronger = table.SETTINGS[method]
    found = {}
    for start in STARTS:
        at_start = argparse.Namespace(**{**vars(args), "set": [*args.set, *(["train.init=pretrained"] if start == "pretrained" else [])]})
        found[start] = table.run_seeds(method, stronger, at_start, "2")
    return found


def tables(args: argparse.Namespace) -> None:
    print(f"\nseeds {args.seeds}; each method at its stronger setting, split 2; mean [95 % interval of the mean]\n")
    print("| method | setting | start | " + " | ".join(COLUMNS) + " |")
    print("|---|---|---|" + "---|" * len(COLUMNS))
    verdicts = []
    for method in args.methods:
        found = cells(method, args)
        setting = ", ".join(f"{k}={v}" for k, v in table.SETTINGS[method][2].items())
        for start in STARTS:
            shown = [table.summary(found[start], c) for c in COLUMNS]
            print(f"| {method} | {setting} | {start} | " + " | ".join(shown) + " |", flush=True)
        outcome = {"first": "scratch lower", "second": "pretrained lower", "tied": "tied", "unknown": "unknown"}
        verdicts.append((method, *(outcome[table.compare(found["scratch"], found["pretrained"], c)]
                                   for c in VERDICTS), paper_init(method)))
    print("\n| method | leakage | SSIM | white-box SSIM | paper spec's start |\n|---|---|---|---|---|")
    for row in verdicts:
        print("| " + " | ".join(row) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=learned_methods(), default=learned_methods())
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra spec override")
    stored_trials.add_arguments(parser, "methods_table")
    args = parser.parse_args(argv)
    args.epochs, args.full, args.curves = None, False, None
    args.store = stored_trials.open_store(args, table.SPEC)
    table.run_then_print(tables, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
