"""Every attacker on a few releases, the strongest per threat model, and the decoder-prior
inversion against the best of the others (issue 27's table).

    python benchmarks/threat_models.py [--workers 2] [--set dataset.train_size=2500 ...] [--stored-only]

Rows: `none` at splits 1, 2 and 3; `noisy_arl` at sigma 1 and 4 (lambda .01, the quickstart's)
at split 2; `privacy_partitioning` at lambda 10, split 2. Each is one trial of
sweeps/quickstart.yaml (Fashion-MNIST coarse/class, small_cnn, seed 0), its defense trained to
convergence, attacked by every registered attacker (`server_arch`, `mlp`; `mirror`, `fc`,
`whitebox`, `decoder_prior`, `unsplit`, `fora`). Per row: each attacker's number with its 95 % test-set
interval (leakage: accuracy; reconstruction: SSIM; the two white-box attackers on the first
`attacks.whitebox.images` test images, the decoders on the whole test slice) and seconds
(`time/attack/<attacker>`: a learned attacker's training steps; a white-box attacker's
choice on validation images and its inversions), the strongest per threat model, what
`decoder_prior` chose (`attack/decoder_prior_start`: 0 grey start, 1 from the decoder, 2 the
decoder alone; its pull), and a verdict by the intervals: `decoder_prior` "beats" the best
other reconstruction attacker when its interval lies wholly above that attacker's, "loses"
when wholly below, else "ties" (against a decoder, the intervals are of different test images:
the first `attacks.whitebox.images` against the whole test slice). Whether both sides converged is shown: a capped attacker's
number is a lower bound. Finished trials are kept in `--results`
(`benchmarks/results/threat_models.jsonl`, `stored_trials`), so a stopped run resumes.
Stored: the six rows at code 150706b1132fc554 (commit 2a32fc5) on the demo slice, the white-box
family on 128 test images and 32 validation images; they print with `--stored-only --set
dataset.train_size=2500 --set dataset.test_size=1000 --set attacks.whitebox.images=128 --set
attacks.whitebox.selection_images=32`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import stored_trials

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
LEAKAGE = ("server_arch", "mlp")
RECONSTRUCTION = ("mirror", "fc", "whitebox", "decoder_prior", "unsplit", "fora")
# (label, method, params, split)
ROWS = (
    ("none, split 1", "none", {}, "1"),
    ("none, split 2", "none", {}, "2"),
    ("none, split 3", "none", {}, "3"),
    ("noisy_arl σ 1", "noisy_arl", {"sigma": 1.0, "lambda": 0.01}, "2"),
    ("noisy_arl σ 4", "noisy_arl", {"sigma": 4.0, "lambda": 0.01}, "2"),
    ("privacy_partitioning λ 10", "privacy_partitioning", {"lambda": 10.0}, "2"),
)
THREAT_COLUMNS = ("privacy/leak_acc:query", "recon/ssim:query", "recon/ssim:white_box", "recon/ssim:architecture_only",
                  "recon/ssim:no_query")
START = {0.0: "grey", 1.0: "decoder + inversion", 2.0: "decoder alone"}


def overrides(method: str, params: dict, split: str, extra: list[str]) -> list[str]:
    return [
        f"method={method}", "search_space=null", f"params={json.dumps(params)}", f"model.split={split}", "train.seed=0",
        f"attacks.leakage={json.dumps(list(LEAKAGE))}", f"attacks.reconstruction={json.dumps(list(RECONSTRUCTION))}", *extra,
    ]


def with_interval(metrics: dict, key: str) -> str:
    value = metrics.get(key, math.nan)
    low, high = metrics.get(f"{key}:ci95_lo", math.nan), metrics.get(f"{key}:ci95_hi", math.nan)
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def verdict(metrics: dict, attacker: str, others: tuple[str, ...]) -> str:
    """`attacker` against the other attacker with the best SSIM, by their intervals."""
    best = max(others, key=lambda name: metrics.get(f"recon/ssim/{name}", -math.inf))
    key, rival = f"recon/ssim/{attacker}", f"recon/ssim/{best}"
    if metrics[f"{key}:ci95_lo"] > metrics[f"{rival}:ci95_hi"]:
        return f"beats {best}"
    if metrics[f"{key}:ci95_hi"] < metrics[f"{rival}:ci95_lo"]:
        return f"loses to {best}"
    return f"ties {best}"


def table(store: stored_trials.StoredTrials, extra: list[str]) -> list[list[str]]:
    """Prints the tables of the stored rows; returns the overrides of those not stored."""
    missing = []
    print("| release | " + " | ".join(f"leak {a}" for a in LEAKAGE) + " | " + " | ".join(f"SSIM {a}" for a in RECONSTRUCTION)
          + " | " + " | ".join(THREAT_COLUMNS) + " | decoder_prior vs the rest | its choice | both sides converged |")
    print("|---" * (len(LEAKAGE) + len(RECONSTRUCTION) + len(THREAT_COLUMNS) + 4) + "|")
    times = []
    for label, method, params, split in ROWS:
        job = overrides(method, params, split, extra)
        metrics = store.get(job)
        if metrics is None:
            missing.append(job)
            print(f"| {label} | not run |")
            continue
        capped = sorted(k.removeprefix("attack/converged/") for k, v in metrics.items() if k.startswith("attack/converged/") and v != 1)
        converged = f"defense {'yes' if metrics.get('train/converged') == 1 else 'no'}; attackers {'all' if not capped else 'capped: ' + ', '.join(capped)}"
        choice = f"{START.get(metrics.get('attack/decoder_prior_start'), '?')}, μ {metrics.get('attack/decoder_prior_pull', math.nan):g}"
        cells = [with_interval(metrics, f"privacy/leak_acc/{a}") for a in LEAKAGE]
        cells += [with_interval(metrics, f"recon/ssim/{a}") for a in RECONSTRUCTION]
        cells += [with_interval(metrics, key) for key in THREAT_COLUMNS]
        rivals = tuple(a for a in RECONSTRUCTION if a != "decoder_prior")
        cells += [verdict(metrics, "decoder_prior", rivals), choice, converged]
        print(f"| {label} | " + " | ".join(cells) + " |")
        parts = {a: metrics.get(f"time/attack/{'leak' if a in LEAKAGE else 'recon'}/{a}", math.nan) for a in (*LEAKAGE, *RECONSTRUCTION)}
        times.append((label, parts, metrics.get("time/train_s", math.nan), metrics.get("time/attack_s", math.nan)))
    if times:
        print("\n| release | train s | attack s | " + " | ".join(f"{a} s" for a in (*LEAKAGE, *RECONSTRUCTION)) + " |")
        print("|---" * (len(LEAKAGE) + len(RECONSTRUCTION) + 3) + "|")
        for label, parts, train, attack in times:
            print(f"| {label} | {train:.0f} | {attack:.0f} | " + " | ".join(f"{s:.0f}" for s in parts.values()) + " |")
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra spec override, e.g. dataset.train_size=2500")
    stored_trials.add_arguments(parser, "threat_models")
    args = parser.parse_args(argv)
    store = stored_trials.open_store(args, SPEC)
    missing = [overrides(method, params, split, args.set) for _, method, params, split in ROWS]
    if not args.stored_only:
        stored_trials.run_missing(store, SPEC, missing, args.workers)
    left = table(store, args.set)
    if left:
        print(f"{len(left)} row(s) not run yet", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
