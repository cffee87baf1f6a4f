"""Are a method's own adversaries as strong as the fresh attackers that judge it?

    python benchmarks/proxy_calibration.py [--methods none maxent ...] [--workers 2]
                                           [--set dataset.train_size=2500 ...] [--stored-only]

With its adversarial weight at 0 (λ, α, λ1 = 0; DISCO: ρ = 1000, its filter's weight on the
privacy loss 1/ρ), a method's proxy adversary only watches the client learn the task, so after
training it should see what a fresh attacker sees: every method with an adversary is run
once that way (a quickstart trial, sweeps/quickstart.yaml: Fashion-MNIST coarse / class,
small_cnn split 2, seed 0, the spec's defense training to convergence and its full attack
suite) and its proxy's test numbers are set beside the fresh ones:

- leakage: `privacy/proxy_leak_acc` against the strongest fresh attacker's
  `privacy/leak_acc`: within 0.03;
- reconstruction: `recon/proxy_ssim` against the best fresh trained decoder (mirror, fc; the
  white-box attacker is not a decoder): within 0.05.

"Within" cuts both ways. A proxy far below the fresh attackers at no pressure cannot tell
"the defense fools only its own adversary" from "its adversary never learned"; a proxy far
above them means the judges are weaker than the defense's own adversary, and the fresh
numbers understate what leaks. Prints a markdown table with PASS, or FAIL and which side,
per row; trials are kept in
`benchmarks/results/proxy_calibration.jsonl` (`stored_trials`: a stopped run resumes).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import stored_trials

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
LEAK_TOLERANCE, SSIM_TOLERANCE = 0.03, 0.05
# method -> its params with no adversarial pressure
AT_ZERO: dict[str, dict] = {
    "none": {},
    "noisy_arl": {"sigma": 1.0, "lambda": 0.0},
    "maxent": {"alpha": 0.0},
    "activation_noise": {"sigma": 0.5},
    "input_noise": {"sigma": 0.05},
    "random_pruning": {"pruning_ratio": 0.5},
    "dp_laplace": {"epsilon": 20.0},
    "dp_pixelation": {"epsilon": 5.0},
    "disco": {"rho": 1000.0},
    "privacy_partitioning": {"lambda": 0.0},
    "adv_recon": {"lambda1": 0.0},
    "deep_obfuscator": {"lambda1": 0.0, "lambda2": 0.0},
}
FRESH_DECODERS = ("recon/ssim/mirror", "recon/ssim/fc")


def overrides(method: str, args: argparse.Namespace) -> list[str]:
    return [f"method={method}", "search_space=null", f"params={json.dumps(AT_ZERO[method])}", *args.set]


def verdict(metrics: dict[str, float]) -> dict[str, float | str]:
    """Proxy against fresh, and PASS/FAIL, for what the method has (leakage proxy, decoders)."""
    row: dict[str, float | str] = {"utility": metrics["utility/acc"], "train epochs": metrics.get("train/epochs_run", math.nan),
                                   "converged": metrics.get("train/converged", math.nan)}
    failures = []
    if "privacy/proxy_leak_acc" in metrics:
        row["leak fresh"], row["leak proxy"] = metrics["privacy/leak_acc"], metrics["privacy/proxy_leak_acc"]
        failures.append(side("leakage", row["leak proxy"] - row["leak fresh"], LEAK_TOLERANCE))
    if "recon/proxy_ssim" in metrics:
        row["SSIM fresh decoders"] = max(metrics.get(key, -math.inf) for key in FRESH_DECODERS)
        row["SSIM proxy"] = metrics["recon/proxy_ssim"]
        failures.append(side("SSIM", row["SSIM proxy"] - row["SSIM fresh decoders"], SSIM_TOLERANCE))
    failures = [failure for failure in failures if failure]
    row["calibrated"] = "FAIL: " + "; ".join(failures) if failures else "PASS"
    return row


def side(what: str, proxy_minus_fresh: float, tolerance: float) -> str:
    """'' within the tolerance, else which side is off and by how much."""
    if abs(proxy_minus_fresh) <= tolerance:
        return ""
    if proxy_minus_fresh < 0:
        return f"{what} proxy {-proxy_minus_fresh:.3f} below the fresh attackers (the proxy is the weaker)"
    return f"{what} proxy {proxy_minus_fresh:.3f} above the fresh attackers (the judges are the weaker)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", choices=sorted(AT_ZERO), default=list(AT_ZERO))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra spec override")
    stored_trials.add_arguments(parser, "proxy_calibration")
    args = parser.parse_args(argv)
    store = stored_trials.open_store(args, SPEC)
    jobs = [overrides(method, args) for method in args.methods]
    if not args.stored_only:
        stored_trials.run_missing(store, SPEC, jobs, args.workers)
    columns = ("utility", "train epochs", "converged", "leak fresh", "leak proxy", "SSIM fresh decoders", "SSIM proxy", "calibrated")
    print("| method | params | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    failed = False
    for method, job in zip(args.methods, jobs, strict=True):
        metrics = store.get(job)
        if metrics is None:
            print(f"| {method} | {AT_ZERO[method]} | not run |")
            continue
        row = verdict(metrics)
        failed |= row["calibrated"] != "PASS"
        cells = [row.get(c, "–") for c in columns]
        print(f"| {method} | {AT_ZERO[method]} | " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
