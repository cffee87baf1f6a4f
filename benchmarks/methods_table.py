"""Every method at two settings of its main knob against `none`, on Fashion-MNIST.

    python benchmarks/methods_table.py [--methods disco maxent ...] [--full] [--epochs 2]

Each row is one trial of sweeps/quickstart.yaml (task `coarse`, private `class`, small_cnn
split 2, its 10k/2k slice unless `--full`) with the method and params below swapped in.
Prints a markdown table of utility/acc, privacy/leak_acc, recon/ssim and client/gflops,
and flags a method whose stronger setting does not leak less than its weaker one. Rows are
also streamed as JSON lines on stderr as they finish.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sweeps.spec import load_spec
from trainables.trial import Trial

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
COLUMNS = ("utility/acc", "privacy/leak_acc", "recon/ssim", "client/gflops")

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


def run(method: str, params: dict, epochs: int, full: bool) -> dict[str, float]:
    overrides = [f"method={method}", "search_space=null", f"params={json.dumps(params)}", f"train.epochs={epochs}"]
    if full:
        overrides += ["dataset.train_size=null", "dataset.test_size=null"]
    metrics, _ = Trial(load_spec(SPEC, overrides).trial_config()).run()
    print(json.dumps({"method": method, **params, **{c: metrics[c] for c in COLUMNS}}), file=sys.stderr, flush=True)
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="full train/test splits instead of the 10k/2k slice")
    args = parser.parse_args()
    baseline = run("none", {}, args.epochs, args.full)
    print("| method | setting | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    print("| none | - | " + " | ".join(f"{baseline[c]:.4f}" for c in COLUMNS) + " |", flush=True)
    not_monotone = []
    for method in args.methods:
        knob, weaker, stronger = SETTINGS[method]
        results = [(params, run(method, params, args.epochs, args.full)) for params in (weaker, stronger)]
        for params, metrics in results:
            setting = ", ".join(f"{k}={v}" for k, v in params.items())
            print(f"| {method} | {setting} | " + " | ".join(f"{metrics[c]:.4f}" for c in COLUMNS) + " |", flush=True)
        if results[1][1]["privacy/leak_acc"] >= results[0][1]["privacy/leak_acc"]:
            not_monotone.append(f"{method} ({knob})")
    print(f"\nstronger setting does not leak less: {', '.join(not_monotone) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
