"""Does the default attack suite reach what a much longer attack reaches? And at what cost?

    python benchmarks/attack_convergence.py [--configs none:1 none:2 noisy_arl:2]
                                            [--reference-epochs 40] [--set attacks.epochs=30]

For each configuration (a quickstart trial, sweeps/quickstart.yaml: Fashion-MNIST coarse /
class, small_cnn, its 10k/2k slice, 2 defense epochs, seed 0; `noisy_arl` at sigma 1,
lambda 0.01; `privacy_partitioning` at lambda 10) the defense is trained once and frozen; then, on
the same frozen release:

- the default suite (the spec's `attacks` section: early stopping on patience, plateau
  decay, best validation epoch, the white-box inversion at its default steps), timed;
- the reference: the same learned attackers for `--reference-epochs` epochs at their
  constant peak rate with no early stopping (best validation epoch kept), and the white-box
  attacker with 4x its steps.

Prints a markdown table (leakage and SSIM of the default suite against the reference, the
strongest attacker of each, epochs run, whether every attacker converged, times, and the
three parts of the default suite that took longest, from `time/attack/<part>`) and a
PASS/FAIL per row against the targets: leakage within 0.01 and SSIM within 0.02 of the
reference. Rows are also printed as JSON lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sweeps.spec import load_spec
from trainables.attacks.suite import ATTACK_TIME_PREFIX, run_attack_suite
from trainables.trial import Trial

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
PARAMS = {"none": "{}", "noisy_arl": "{sigma: 1.0, lambda: 0.01}", "privacy_partitioning": "{lambda: 10.0}"}
LEAK_TOLERANCE, SSIM_TOLERANCE = 0.01, 0.02


def trained_trial(method: str, split: str, overrides: list[str]) -> Trial:
    spec = load_spec(SPEC, [f"method={method}", f"params={PARAMS[method]}", "search_space=null", f"model.split={split}", *overrides])
    trial = Trial(spec.trial_config())
    while trial.epoch < trial.config.train.epochs:
        trial.train_epoch()
    return trial


def reference_config(trial: Trial, epochs: int):
    attacks = trial.config.attacks
    whitebox = attacks.whitebox.model_copy(update={"steps": attacks.whitebox.steps * 4})
    return attacks.model_copy(update={"epochs": epochs, "patience": epochs, "schedule": "constant", "whitebox": whitebox})


def strongest(metrics: dict[str, float], prefix: str) -> str:
    per = {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix) and ":" not in k}
    return max(per, key=per.get)


def row(method: str, split: str, overrides: list[str], reference_epochs: int) -> dict:
    trial = trained_trial(method, split, overrides)
    start = time.perf_counter()
    default, _ = trial.attack()  # recalibrates batch norm, then the default suite
    default_seconds = time.perf_counter() - start
    data = trial.data.attack_data()
    start = time.perf_counter()
    reference = run_attack_suite(trial.method, data, reference_config(trial, reference_epochs), seed=trial.config.train.seed + 1).metrics
    reference_seconds = time.perf_counter() - start
    learned = [k.removeprefix("attack/converged/") for k in default if k.startswith("attack/converged/")]
    result = {
        "method": method, "split": split,
        "leak": default["privacy/leak_acc"], "leak_ref": reference["privacy/leak_acc"],
        "leak_by": strongest(default, "privacy/leak_acc/"), "leak_ref_by": strongest(reference, "privacy/leak_acc/"),
        "ssim": default["recon/ssim"], "ssim_ref": reference["recon/ssim"],
        "ssim_by": strongest(default, "recon/ssim/"), "ssim_ref_by": strongest(reference, "recon/ssim/"),
        "epochs_run": {a: int(default[f"attack/epochs_run/{a}"]) for a in learned},
        "converged": all(default[f"attack/converged/{a}"] == 1 for a in learned),
        "default_s": default_seconds, "reference_s": reference_seconds,
        "time_parts": {k.removeprefix(ATTACK_TIME_PREFIX): v for k, v in default.items() if k.startswith(ATTACK_TIME_PREFIX)},
        "per_attacker": {k: v for k, v in default.items() if k.startswith(("privacy/leak_acc/", "recon/ssim/"))},
        "per_attacker_ref": {k: v for k, v in reference.items() if k.startswith(("privacy/leak_acc/", "recon/ssim/"))},
    }
    result["pass"] = result["leak"] >= result["leak_ref"] - LEAK_TOLERANCE and result["ssim"] >= result["ssim_ref"] - SSIM_TOLERANCE
    return result


def markdown(rows: list[dict], reference_epochs: int) -> str:
    lines = [
        f"| config | leak default (by) | leak {reference_epochs}-ep ref (by) | SSIM default (by) | SSIM ref (by) | epochs run | all converged | default s | ref s | default s by part | within target |",
        "|---|---|---|---|---|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        epochs = ", ".join(f"{a.split('/')[-1]} {n}" for a, n in r["epochs_run"].items())
        parts = sorted(r["time_parts"].items(), key=lambda item: -item[1])[:3]
        where = ", ".join(f"{part.split('/')[-1]} {seconds:.0f}" for part, seconds in parts)
        lines.append(
            f"| {r['method']} split {r['split']} | {r['leak']:.4f} ({r['leak_by']}) | {r['leak_ref']:.4f} ({r['leak_ref_by']}) | "
            f"{r['ssim']:.3f} ({r['ssim_by']}) | {r['ssim_ref']:.3f} ({r['ssim_ref_by']}) | {epochs} | "
            f"{'yes' if r['converged'] else 'no'} | {r['default_s']:.0f} | {r['reference_s']:.0f} | {where} | {'PASS' if r['pass'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["none:1", "none:2", "noisy_arl:2"], help="METHOD:SPLIT")
    parser.add_argument("--reference-epochs", type=int, default=40)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="spec override PATH=VALUE")
    args = parser.parse_args(argv)
    rows = []
    for config in args.configs:
        method, split = config.split(":")
        rows.append(row(method, split, args.overrides, args.reference_epochs))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(markdown(rows, args.reference_epochs))
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
