"""Which noise is larger on a quickstart trial: test sampling or training?

    python benchmarks/interval_vs_seeds.py [--seeds 3] [--set KEY=VALUE ...]

Runs the quickstart trial (sweeps/quickstart.yaml as shipped: noisy_arl sigma 1, lambda
0.01, split 2, its 10k/2k slice) under train.seed 0..k-1. The seed moves the defense's
initialisation and randomness and the attackers' initialisation; the data slice and the
test images stay the same. For each metric it prints every seed's value with its 95 %
test-set bootstrap interval, then two standard deviations side by side:

- test sampling: the bootstrap interval's width / 3.92 (its normal-equivalent SD), averaged
  over the seeds;
- training: the across-seed SD of the values (on the same test images, so no test noise).

A metric whose training SD is the larger needs seed replicates, not a bigger test set.
Rows are also printed as JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from analysis.intervals import NORMAL_WIDTH
from sweeps.spec import load_spec
from trainables.bootstrap import interval_keys
from trainables.trial import Trial

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
METRICS = ("utility/acc", "privacy/leak_acc", "privacy/leak_acc/server_arch", "recon/ssim", "recon/ssim/mirror", "recon/ssim/whitebox")


def run_seed(seed: int, overrides: list[str]) -> dict[str, float]:
    spec = load_spec(SPEC, ["search_space=null", f"train.seed={seed}", *overrides])
    start = time.perf_counter()
    metrics, _ = Trial(spec.trial_config()).run()
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec override")
    args = parser.parse_args(argv)
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(seed, args.set))
        print(json.dumps({"seed": seed, **{k: v for k, v in runs[-1].items() if k.split(":")[0] in METRICS or k == "seconds"}}), file=sys.stderr, flush=True)
    print(f"| metric | {' | '.join(f'seed {s}' for s in range(args.seeds))} | test-sampling SD | training SD | larger |")
    print(f"|---|{'---|' * args.seeds}---|---|---|")
    for metric in METRICS:
        if not all(metric in run and interval_keys(metric)[0] in run for run in runs):
            continue
        values = [run[metric] for run in runs]
        widths = [run[interval_keys(metric)[1]] - run[interval_keys(metric)[0]] for run in runs]
        test_sd = statistics.mean(widths) / NORMAL_WIDTH
        training_sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        cells = [f"{run[metric]:.4f} [{run[interval_keys(metric)[0]]:.4f}, {run[interval_keys(metric)[1]]:.4f}]" for run in runs]
        larger = "training" if training_sd > test_sd else "test sampling"
        print(f"| {metric} | {' | '.join(cells)} | {test_sd:.4f} | {training_sd:.4f} | {larger} |")
    seconds = ", ".join(f"{run['seconds']:.0f}" for run in runs)
    print(f"\ntrial seconds: {seconds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
