"""Does safe attack-budget pruning (`search.screen`) save time without losing a front point?

    python benchmarks/screening_sweep.py [--screen 0.2] [--num-samples 12] [--seed 0]
                                         [--set dataset.train_size=2500 ...] [--home DIR]

Runs sweeps/quickstart.yaml twice with the same sampler and sampler seed, as real sweeps
(`python -m sweeps run`, Ray Tune and Optuna, its own MLflow store under `--home`): once with
screening off, once with `search.screen` at `--screen`. Then every configuration the screened
sweep stopped after its screening attack is run again as a plain trial with the full suite
(`python -m sweeps trial`), and put beside the screened sweep's fully attacked trials: had any
of them been on the front, screening would have lost it. Prints, per sweep, the wall time,
the trials screened out and the front (utility/acc max, privacy/leak_acc min), and per
screened configuration its screened best case, its fully attacked values and whether those
are on the front. The two sweeps propose the same first trials and part ways after the first
trial screened out (the searcher is told PRUNED there, COMPLETE in the other sweep), so
their fronts are compared by hypervolume, not point by point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis.pareto import objective_values, pareto_mask, values_hypervolume  # noqa: E402
from analysis.runs import load_runs  # noqa: E402
from trainables.schema import ASSIGNMENT_TAG, SCREEN_PREFIX, SCREENED_TAG, tag_is  # noqa: E402
from trainables.tracking import search_all_runs  # noqa: E402

SPEC = REPO / "sweeps" / "quickstart.yaml"
OBJECTIVES = (("utility/acc", "max"), ("privacy/leak_acc", "min"))
REFERENCE = np.array([0.0, 1.0])


def sweeps(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps", *args], cwd=REPO, env=env, capture_output=True, text=True)


def run_sweep(experiment: str, screen: float | None, args: argparse.Namespace, env: dict) -> float:
    command = ["run", str(SPEC), "--num-samples", str(args.num_samples), "--set", f"search.seed={args.seed}",
               "--set", f"tracking.experiment={experiment}", *(f"--set={s}" for s in args.set)]
    if screen is not None:
        command += ["--set", f"search.screen={screen}"]
    start = time.perf_counter()
    result = sweeps(*command, env=env)
    if result.returncode != 0:
        raise SystemExit(f"sweep {experiment} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def screened_runs(experiment: str, uri: str) -> list[tuple[dict, dict[str, float]]]:
    """(assignment, screened metrics) of each run the sweep stopped after its screening attack."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = search_all_runs(client, [exp.experiment_id], tag_is(SCREENED_TAG, "true"))
    return [(json.loads(run.data.tags[ASSIGNMENT_TAG]),
             {k.removeprefix(SCREEN_PREFIX): v for k, v in run.data.metrics.items() if k.startswith(SCREEN_PREFIX)}) for run in runs]


def full_attack(assignment: dict, args: argparse.Namespace, env: dict) -> dict[str, float]:
    """The screened-out configuration as a plain trial with the full attack suite."""
    sets = [f"--set={path}={json.dumps(value)}" for path, value in assignment.items()]
    result = sweeps("trial", str(SPEC), "--json", *sets, *(f"--set={s}" for s in args.set), env=env)
    if result.returncode != 0:
        raise SystemExit(f"trial {assignment} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def objective_rows(metrics: list[dict[str, float]]) -> np.ndarray:
    return np.array([[m[key] for key, _ in OBJECTIVES] for m in metrics], dtype=float).reshape(-1, len(OBJECTIVES))


def front_of(values: np.ndarray) -> np.ndarray:
    import pyarrow as pa

    table = pa.table({key: values[:, i] for i, (key, _) in enumerate(OBJECTIVES)})
    return pareto_mask(table, OBJECTIVES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screen", type=float, default=0.2)
    parser.add_argument("--num-samples", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="spec override for both sweeps")
    parser.add_argument("--home", type=Path, default=None, help="PRIVSWEEP_HOME of both sweeps (default: a new temporary folder)")
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="screening_"))
    env = {**os.environ, "PRIVSWEEP_HOME": str(home)}
    uri = f"sqlite:///{home / 'mlflow.db'}"
    print(f"store: {uri}", file=sys.stderr, flush=True)
    seconds = {"off": run_sweep("screening_off", None, args, env), "on": run_sweep("screening_on", args.screen, args, env)}
    finished = {mode: load_runs(f"screening_{mode}", uri) for mode in seconds}
    values = {mode: objective_values(finished[mode], OBJECTIVES) for mode in seconds}
    screened = screened_runs("screening_on", uri)
    attacked = [(assignment, screen, full_attack(assignment, args, env)) for assignment, screen in screened]
    print(f"\nquickstart, {args.num_samples} trials, sampler seed {args.seed}, screen {args.screen}; {' '.join(args.set)}\n")
    print("| sweep | wall s | trials fully attacked | screened out | front size | hypervolume |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in seconds:
        mask = front_of(values[mode])
        hv = values_hypervolume(values[mode], [m == "max" for _, m in OBJECTIVES], REFERENCE)
        count = len(screened) if mode == "on" else 0
        print(f"| screening {mode} | {seconds[mode]:.0f} | {len(values[mode])} | {count} | {int(mask.sum())} | {hv:.4f} |")
    if not attacked:
        print("\nno trial was screened out")
        return 0
    combined = np.vstack([values["on"], objective_rows([full for _, _, full in attacked])])
    on_front = front_of(combined)[len(values["on"]):]
    print("\n| screened configuration | screened best case (acc, leak) | fully attacked (acc, leak) | on the front with it |")
    print("|---|---|---|---|")
    for (assignment, screen, full), front in zip(attacked, on_front, strict=True):
        best = (screen.get("utility/acc:ci95_hi", screen.get("utility/acc")), screen.get("privacy/leak_acc:ci95_lo", screen.get("privacy/leak_acc")))
        shown = ", ".join(f"{k.split('.')[-1]}={v:.4g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}" for k, v in assignment.items())
        print(f"| {shown} | {best[0]:.4f}, {best[1]:.4f} | {full['utility/acc']:.4f}, {full['privacy/leak_acc']:.4f} | {'YES: lost' if front else 'no'} |")
    lost = int(on_front.sum())
    print(f"\n{lost} of {len(attacked)} screened-out configuration(s) would have been on the front")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
