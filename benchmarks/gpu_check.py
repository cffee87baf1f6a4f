"""One short GPU check: a quickstart trial on CUDA, data resident on the device, bf16 defense
training, the default (converged) attack suite; prints images/s of both phases. Then the
same frozen defense is attacked again with the attackers' training in bf16
(`attacks.precision: bf16`), so one run says whether bf16 makes the attack faster and
whether it weakens it (leakage and SSIM side by side).

    python benchmarks/gpu_check.py [--set train.epochs=2 ...]

Exits 2 with a one-line reason on a machine without a visible GPU (never a CPU fallback:
a CPU number printed as a GPU check would be a lie). Prints the device, whether the
splits really live on it, the training throughput (train images x epochs / train seconds),
the attack throughput (attacker images x the longest attacker's epochs / attack seconds,
white-box inversion included in the seconds), the attack metrics and the peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sweeps.spec import load_spec
from trainables.attacks.suite import run_attack_suite
from trainables.trial import Trial

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="spec override PATH=VALUE")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); run it on a GPU machine.", file=sys.stderr)
        return 2
    spec = load_spec(SPEC, ["search_space=null", "train.device=cuda", "train.precision=bf16", *args.overrides])
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trial = Trial(spec.trial_config())
    resident = all(split.images.is_cuda for split in (trial.data.train, trial.data.val, trial.data.test))
    metrics, _ = trial.run()
    torch.cuda.synchronize()
    longest = max(v for k, v in metrics.items() if k.startswith("attack/epochs_run/"))
    report = {
        "device": torch.cuda.get_device_name(0),
        "data_on_device": resident,
        "train_images_per_s": len(trial.data.train) * trial.config.train.epochs / metrics["time/train_s"],
        "attack_images_per_s": len(trial.data.attacker) * longest / metrics["time/attack_s"],
        "time/train_s": metrics["time/train_s"],
        "time/attack_s": metrics["time/attack_s"],
        "wall_s": time.perf_counter() - start,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        **{k: v for k, v in metrics.items() if k.startswith(("utility/acc", "privacy/leak_acc", "recon/ssim", "attack/"))},
    }
    data = trial.data.attack_data()
    bf16 = trial.config.attacks.model_copy(update={"precision": "bf16"})
    start = time.perf_counter()
    bf16_metrics = run_attack_suite(trial.method, data, bf16, seed=trial.config.train.seed + 1).metrics
    torch.cuda.synchronize()
    report["bf16_attack"] = {
        "time/attack_s": time.perf_counter() - start,
        **{k: v for k, v in bf16_metrics.items() if k.startswith(("privacy/leak_acc", "recon/ssim", "attack/epochs_run"))},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
