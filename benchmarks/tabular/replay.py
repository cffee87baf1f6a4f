"""Drive the samplers against the tabular benchmark: hypervolume against trials, in seconds.

    python benchmarks/tabular/replay.py [--table benchmarks/tabular/quickstart_demo.parquet]
        [--samplers random nsga2 tpe gp nsga2_sobol] [--seeds 20] [--trials 72] [--budget 48]
        [--concurrent 1]

Each sampler runs `--seeds` times (sampler seeds 0..n-1) on sweeps/quickstart.yaml's own
search space and objectives (utility/acc max, privacy/leak_acc min), through the
launcher's own pieces: the sampler builders of `sweeps.search.SAMPLERS` with `num_samples`
= `--budget` (NSGA-II's population follows it) and its define-by-run space. Each proposal is
answered with the table's values at the nearest grid point (in log space for loguniform
domains, exactly for choices), as HPO work does with tabular benchmarks: a trial costs a
lookup instead of minutes. `nsga2_sobol` is NSGA-II whose first generation is a scrambled
Sobol design (`space_filling_design`, enqueued into the study) instead of random points.

What is measured, per sampler and seed: the hypervolume of the trials so far after each
trial (`analysis.pareto.values_hypervolume`, reference (the task's chance rate, 1.0) as in
`analysis.pareto.default_reference`). The target is random search's hypervolume after
`--budget` trials, the median over its seeds; each sampler's score is the number of
trials it needs to reach it, median over seeds (a seed that never reaches it counts as
more than `--trials`). Prints a markdown table, writes `hypervolume_vs_trials.png` (median
and quartiles over seeds) and the curves as JSON beside the table.

`--concurrent k` replays a sweep that keeps k trials running (`search.max_concurrent`): a
sampler proposes k trials before the first is answered, then one more as each is answered
(first asked, first answered), so it decides with k - 1 trials still unanswered, as in a
real launch. The plot and curves then go to `hypervolume_vs_trials_c<k>.*`.

Measured (20 seeds, `quickstart_demo.parquet`; trials to reach random's median 48-trial
hypervolume, median [quartiles]): one at a time, gp 15 [12, 21], tpe 19 [14, 34], random
54 [34, > 72], nsga2 56 [32, > 72], nsga2_sobol 70 [33, > 72]; 8 running at once, gp 22
[18, 24], tpe 24 [19, 32], random 54, nsga2 66, nsga2_sobol 63. So gp is the launcher's
default sampler; a Sobol first generation did not help NSGA-II, which with a population of
16 has barely begun to breed by trial 48, so it is not in the launcher.

Caveats, said once: the table holds one seed's values per configuration, so a sampler is
never fooled by noise here as it can be in a real sweep; a proposal that lands on a grid
point already seen counts as a trial, because in a real sweep its continuous values differ
and it costs a full trial.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pyarrow.parquet as pq
from scipy.stats import qmc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from analysis.pareto import values_hypervolume  # noqa: E402
from sweeps.search import SAMPLERS, DefineByRun  # noqa: E402
from sweeps.search_space import Domain, SearchSpace, load_search_space  # noqa: E402
from sweeps.spec import SweepSpec, load_spec  # noqa: E402

SPEC = HERE.parent.parent / "sweeps" / "quickstart.yaml"
SOBOL = "nsga2_sobol"
COLUMN_OF_PATH = {"params.sigma": "sigma", "params.lambda": "lambda", "model.split": "split"}


@dataclass
class Table:
    """The grid's coordinates per search-space path and the objective values per row."""

    coordinates: dict[str, np.ndarray]  # path -> value per row
    values: np.ndarray  # rows x objectives
    maximise: list[bool]
    reference: np.ndarray

    @classmethod
    def read(cls, path: Path, spec: SweepSpec) -> Table:
        table = pq.read_table(path)
        coordinates = {p: table.column(c).to_numpy() for p, c in COLUMN_OF_PATH.items()}
        values = np.column_stack([table.column(o.metric).to_numpy().astype(float) for o in spec.objectives])
        maximise = [o.mode == "max" for o in spec.objectives]
        chance = float(np.nanmin(table.column("utility/chance").to_numpy())) if "utility/chance" in table.column_names else 0.0
        reference = np.array([chance if m else 1.0 for m in maximise])
        return cls(coordinates, values, maximise, reference)

    def nearest(self, assignment: dict, space: SearchSpace) -> int:
        """The row nearest to a sampled assignment: log distance on loguniform domains,
        linear (range-normalised) on uniform and int ones, equality on choices."""
        rows = np.ones(len(self.values), dtype=bool)
        distance = np.zeros(len(self.values))
        for _, path, domain in space.items():
            grid, value = self.coordinates[path], assignment[path]
            if domain.kind == "choice":
                rows &= grid == value
            elif domain.kind == "loguniform":
                distance += (np.log(grid.astype(float)) - math.log(value)) ** 2
            else:
                lo, hi = domain.values
                distance += ((grid.astype(float) - value) / max(hi - lo, 1e-12)) ** 2
        if not rows.any():
            raise ValueError(f"no grid row has the choices of {assignment}")
        return int(np.flatnonzero(rows)[np.argmin(distance[rows])])


def space_filling_design(space: SearchSpace, count: int, seed: int) -> list[dict]:
    """`count` points of a scrambled Sobol sequence mapped onto the space (loguniform in log
    space, a choice by equal shares of [0, 1)), keyed by the study's parameter names."""
    domains = [(path, domain) for _, path, domain in space.items() if domain.kind != "fixed"]
    unit = qmc.Sobol(d=len(domains), scramble=True, seed=seed).random(count)
    points = []
    for row in unit:
        point = {}
        for u, (path, domain) in zip(row, domains, strict=True):
            point[path] = _from_unit(float(u), domain)
        points.append(point)
    return points


def _from_unit(u: float, domain: Domain):
    if domain.kind == "choice":
        return domain.values[min(int(u * len(domain.values)), len(domain.values) - 1)]
    lo, hi = domain.values
    if domain.kind == "loguniform":
        return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
    if domain.kind == "int":
        return int(min(hi, lo + math.floor(u * (hi - lo + 1))))
    return float(lo + u * (hi - lo))


def study_for(name: str, seed: int, budget: int, space: SearchSpace) -> optuna.Study:
    sampler_name = "nsga2" if name == SOBOL else name
    spec = load_spec(SPEC, [f"search.sampler={sampler_name}", f"search.seed={seed}", f"search.num_samples={budget}"])
    sampler = SAMPLERS[sampler_name](spec, space)
    study = optuna.create_study(directions=[("maximize" if o.mode == "max" else "minimize") for o in spec.objectives], sampler=sampler)
    if name == SOBOL:
        for point in space_filling_design(space, sampler.population_size, seed):
            study.enqueue_trial(point)
    return study


def replay(
    name: str, seed: int, table: Table, space: SearchSpace, trials: int, budget: int, concurrent: int = 1
) -> tuple[np.ndarray, list[int]]:
    """The hypervolume after each answered trial, and the grid row each landed on, with up to
    `concurrent` trials asked and not yet answered."""
    study = study_for(name, seed, budget, space)
    define = DefineByRun(space)
    rows: list[int] = []
    running: list[tuple[optuna.Trial, int]] = []
    asked = 0
    while len(rows) < trials:
        while asked < trials and len(running) < concurrent:
            trial = study.ask()
            running.append((trial, table.nearest(define(trial), space)))
            asked += 1
        trial, row = running.pop(0)
        study.tell(trial, table.values[row].tolist())
        rows.append(row)
    values = table.values[rows]
    curve = np.array([values_hypervolume(values[: n + 1], table.maximise, table.reference) for n in range(trials)])
    return curve, rows


def trials_to_reach(curve: np.ndarray, target: float) -> float:
    """1-based trial count at which `curve` first reaches `target`; inf if never."""
    reached = np.flatnonzero(curve >= target - 1e-12)
    return float(reached[0] + 1) if len(reached) else math.inf


def median_text(values: list[float], trials: int) -> str:
    """Median [quartiles] of trial counts, a seed that never reached the target as "> trials"."""
    capped = np.minimum(np.asarray(values, dtype=float), trials + 1)
    q1, median, q3 = np.percentile(capped, [25, 50, 75])

    def shown(v: float) -> str:
        return f"> {trials}" if v > trials else f"{v:.0f}"

    return f"{shown(median)} [{shown(q1)}, {shown(q3)}]"


def plot(curves: dict[str, np.ndarray], target: float, budget: int, out: Path, concurrent: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, runs in curves.items():
        trials = np.arange(1, runs.shape[1] + 1)
        q1, median, q3 = np.percentile(runs, [25, 50, 75], axis=0)
        (line,) = axes.plot(trials, median, label=name, lw=2 if name != "random" else 1.5)
        axes.fill_between(trials, q1, q3, color=line.get_color(), alpha=0.15, lw=0)
    axes.axhline(target, color="grey", ls=":", lw=1, label=f"random's median after {budget} trials")
    axes.set_xlabel("trials")
    axes.set_ylabel("hypervolume (utility ↑, leakage ↓)")
    running = f", {concurrent} running at once" if concurrent > 1 else ""
    axes.set_title(f"Samplers on the quickstart table: median and quartiles over {next(iter(curves.values())).shape[0]} seeds{running}", fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=HERE / "quickstart_demo.parquet")
    parser.add_argument("--samplers", nargs="+", default=["random", "nsga2", "tpe", "gp", SOBOL], choices=[*SAMPLERS, SOBOL])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=72, help="trials per replay")
    parser.add_argument("--budget", type=int, default=48, help="random's trials that set the target; num_samples of the samplers")
    parser.add_argument("--concurrent", type=int, default=1, help="trials running at once (search.max_concurrent)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the plot and curves (default: beside the table)")
    args = parser.parse_args(argv)
    if not args.table.exists():
        print(f"{args.table}: no such table; build it with python benchmarks/tabular/grid.py", file=sys.stderr)
        return 2
    if args.concurrent < 1:
        print(f"--concurrent {args.concurrent}: at least 1 trial runs at a time", file=sys.stderr)
        return 2
    if not 1 <= args.budget <= args.trials:
        print(f"--budget {args.budget} must lie in [1, --trials {args.trials}]: the target is read off the replays", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(SPEC)
    space = load_search_space(spec.search_space)
    table = Table.read(args.table, spec)
    names = ["random", *[n for n in args.samplers if n != "random"]]
    curves = {name: np.array([replay(name, seed, table, space, args.trials, args.budget, args.concurrent)[0] for seed in range(args.seeds)]) for name in names}
    target = float(np.median(curves["random"][:, args.budget - 1]))
    best = values_hypervolume(table.values, table.maximise, table.reference)
    print(f"\n{args.table.name}: {len(table.values)} configurations; the whole grid's hypervolume {best:.4f}; "
          f"target: random's median after {args.budget} trials, {target:.4f}; {args.seeds} seeds; {args.concurrent} running at once\n")
    checkpoints = sorted({n for n in (12, 24, args.budget) if n <= args.trials})
    print("| sampler | trials to reach the target, median [quartiles] | " + " | ".join(f"HV after {n}" for n in checkpoints) + " |")
    print("|---|---|" + "---|" * len(checkpoints))
    for name, runs in curves.items():
        needed = [trials_to_reach(curve, target) for curve in runs]
        at = [float(np.median(runs[:, n - 1])) for n in checkpoints]
        print(f"| {name} | {median_text(needed, args.trials)} | " + " | ".join(f"{v:.4f}" for v in at) + " |")
    out = args.out or args.table.parent
    out.mkdir(parents=True, exist_ok=True)
    stem = "hypervolume_vs_trials" + (f"_c{args.concurrent}" if args.concurrent > 1 else "")
    plot(curves, target, args.budget, out / f"{stem}.png", args.concurrent)
    (out / f"{stem}.json").write_text(json.dumps({n: c.tolist() for n, c in curves.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
