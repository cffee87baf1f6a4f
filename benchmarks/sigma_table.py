"""Noisy ARL vs no defense on the full Fashion-MNIST split (task `coarse`, private `class`).

    python benchmarks/sigma_table.py [--sigmas 0.5 2 8] [--epochs 3] [--attack-epochs 2]

Runs `none` and `noisy_arl` at each sigma (same lambda) from sweeps/quickstart.yaml with
the full train/test splits, and prints a markdown table of utility/acc, privacy/leak_acc,
privacy/leak_chance and recon/ssim, plus the first sigma whose utility is more than
2 points below `none`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sweeps.spec import load_spec
from trainables.trial import Trial

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
COLUMNS = ("utility/acc", "privacy/leak_acc", "privacy/leak_chance", "recon/ssim")


def run(method: str, sigma: float | None, epochs: int, attack_epochs: int) -> dict[str, float]:
    overrides = [
        "dataset.train_size=null", "dataset.test_size=null", f"train.epochs={epochs}",
        f"attacks.epochs={attack_epochs}", f"method={method}", "search_space=null",
    ]
    overrides.append(f"params.sigma={sigma}" if sigma is not None else "params={}")
    metrics, _ = Trial(load_spec(SPEC, overrides).trial_config()).run()
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.5, 2.0, 8.0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--attack-epochs", type=int, default=2)
    args = parser.parse_args()
    rows = [("none", None, run("none", None, args.epochs, args.attack_epochs))]
    for sigma in args.sigmas:
        rows.append(("noisy_arl", sigma, run("noisy_arl", sigma, args.epochs, args.attack_epochs)))
        print(json.dumps({"sigma": sigma, **rows[-1][2]}), file=sys.stderr, flush=True)
    print("| method | σ | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for method, sigma, metrics in rows:
        print(f"| {method} | {sigma if sigma is not None else '-'} | " + " | ".join(f"{metrics[c]:.4f}" for c in COLUMNS) + " |")
    baseline = rows[0][2]["utility/acc"]
    drops = [sigma for _, sigma, m in rows[1:] if baseline - m["utility/acc"] > 0.02]
    print(f"\nfirst sigma with utility > 2 points below none: {drops[0] if drops else 'none of them'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
