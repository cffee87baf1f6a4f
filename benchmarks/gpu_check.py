"""One short GPU check: a quickstart trial on CUDA, data resident on the device, bf16 defense
training, the default (converged) attack suite; prints images/s of both phases. Then the
same frozen defense is attacked again with the attackers' training in bf16
(`attacks.precision: bf16`), so one run says whether bf16 makes the attack faster and
whether it weakens it (leakage and SSIM side by side).

    python benchmarks/gpu_check.py [--set train.epochs=2 ...] [--no-sweep]

Then (unless `--no-sweep`) a real 4-trial `--smoke` sweep of the quickstart with
`resources.gpu: 0.25` and 4 trials at once, in a temporary store: it prints each trial's
`privsweep.device` tag (the GPU's name and UUID) and run interval, and whether the 4 trials
ran at once on one GPU (one UUID, intervals that all overlap).

Exits 2 with a one-line reason on a machine without a visible GPU (never a CPU fallback:
a CPU number printed as a GPU check would be a lie). Prints the device, whether the
splits really live on it, the training throughput (train images x epochs / train seconds),
the attack throughput (attacker images x the longest attacker's epochs / attack seconds,
white-box inversion included in the seconds), the attack metrics and the peak GPU memory.
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

import torch

from sweeps.spec import load_spec
from trainables.attacks.suite import run_attack_suite
from trainables.trial import Trial

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "sweeps" / "quickstart.yaml"
SHARED_TRIALS, SHARE = 4, 0.25


def shared_gpu_sweep() -> dict:
    """The 4-trial smoke sweep at resources.gpu 0.25: did its trials share one GPU at once?"""
    from mlflow.tracking import MlflowClient

    from trainables.schema import DEVICE_TAG, ROLE_TAG, tag_is

    home = tempfile.mkdtemp(prefix="gpu_check_")
    command = [sys.executable, "-m", "sweeps", "run", str(SPEC), "--smoke", "--num-samples", str(SHARED_TRIALS),
               "--set", f"search.max_concurrent={SHARED_TRIALS}", "--set", f"resources.gpu={SHARE}",
               "--set", "tracking.experiment=gpu_check"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env={**os.environ, "PRIVSWEEP_HOME": home}, capture_output=True, text=True)
    report: dict = {"command": " ".join(command[1:]), "returncode": result.returncode, "wall_s": time.perf_counter() - start}
    if result.returncode != 0:
        report["stderr_tail"] = result.stderr[-2000:]
        return report
    client = MlflowClient(f"sqlite:///{home}/mlflow.db")
    experiment = client.get_experiment_by_name("gpu_check/smoke")
    runs = client.search_runs([experiment.experiment_id], tag_is(ROLE_TAG, "trial"))
    starts, ends = [r.info.start_time for r in runs], [r.info.end_time for r in runs]
    devices = {r.data.tags.get(DEVICE_TAG) for r in runs}
    device = next(iter(devices), None)  # None: a run without the tag
    report["trials"] = [{"device": r.data.tags.get(DEVICE_TAG), "start_ms": r.info.start_time, "end_ms": r.info.end_time,
                         "status": r.info.status} for r in runs]
    report["one_gpu"] = len(runs) == SHARED_TRIALS and devices == {device} and str(device).startswith("cuda")
    report["all_at_once"] = len(runs) == SHARED_TRIALS and max(starts) < min(ends)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="spec override PATH=VALUE")
    parser.add_argument("--no-sweep", action="store_true", help="skip the 4-trial shared-GPU smoke sweep")
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
        **{k: v for k, v in metrics.items() if k.startswith(("utility/acc", "privacy/leak_acc", "recon/ssim", "attack/", "time/attack/"))},
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
    if not args.no_sweep:
        report["shared_gpu_sweep"] = shared_gpu_sweep()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
