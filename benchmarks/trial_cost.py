"""Where one trial's time goes, and how close each part runs to this machine's peak.

    python benchmarks/trial_cost.py [--spec sweeps/quickstart.yaml] [--threads 2] [--set key=value ...]

Runs one trial of the spec (its `method` and `params`, `search_space` ignored) end to end,
as `python -m sweeps trial` does, on `--threads` torch threads, then prints one row per part:

- train: defense training, every phase to convergence (`time/train_s`);
- each learned attacker's training steps, the white-box inversion, releasing batches, the
  attackers' validation passes and the test pass (`time/attack/<part>`);

with its seconds, its FLOP count and its GFLOP/s against the machine's fp32 matmul peak
(measured here: a 2048 x 2048 matmul on the same threads). FLOPs are counted with
`torch.utils.flop_counter.FlopCounterMode` on one step of each part (forward and backward),
per image, then multiplied by the images the trial pushed through it: the method's
`train_step` averaged over `COUNTED_STEPS` consecutive steps (DeepObfuscator cycles through
4 kinds of step) plus, for a game, the shadow attacker's step on a validation release
(its pass runs inside every training epoch), times the train split times the epochs run, each attacker's step times the
attacker split times its epochs run, the white-box inversion's step times its steps times
the test images and, per TV candidate, the selection images. Validation and release passes are forward
only and small; they are timed, not counted. A part whose GFLOP/s is far below the peak is
bound by per-operation overhead (small convolutions at batch 64-256 on 2 cores), not by
arithmetic.

Run it with nothing else on the machine: two heavy jobs on 2 cores make every time wrong.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

SPEC = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"
COUNTED_STEPS = 4
TIME_PREFIX = "time/attack/"


def matmul_peak_gflops(size: int = 2048, repeats: int = 10, rounds: int = 3) -> float:
    """The best of `rounds` timings of `repeats` fp32 matmuls of two size x size matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def flops(run) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def train_step_flops(trial, config) -> float:
    """Mean FLOPs per image of one defense training step, on a fresh copy of the method."""
    from trainables.trial import build_method

    method = build_method(config, trial.data.image_shape, trial.data.classes)
    method.start_training(trial.data.train, config.train.batch_size)
    method.start_phase(trial.phases[-1])
    method.train()
    x, y_task, y_private = next(iter(trial.data.train.batches(config.train.batch_size)))
    return sum(flops(lambda: method.train_step(x, y_task, y_private)) for _ in range(COUNTED_STEPS)) / COUNTED_STEPS / len(x)


def shadow_step_flops(trial, config) -> float:
    """FLOPs per image of the shadow attacker's step (release without gradient, then its
    forward and backward), 0 for a method without a game."""
    if trial.shadow is None:
        return 0.0
    from torch.nn import functional as F

    x, _, y_private = next(iter(trial.data.train.batches(config.train.batch_size)))
    trial.method.eval()

    def step() -> None:
        with torch.no_grad():
            z = trial.method.validation_release(x)
        F.cross_entropy(trial.shadow.net(z), y_private).backward()

    return flops(step) / len(x)


def attacker_step_flops(trial, config) -> dict[str, float]:
    """FLOPs per image of one optimiser step of each learned attacker, on one released batch."""
    from trainables.attacks.base import AttackContext
    from trainables.attacks.releases import targets_of
    from trainables.attacks.suite import build_attacks

    cfg = config.attacks
    _, attackers = build_attacks(AttackContext(trial.method, cfg, trial.data.classes))
    x, y_task, y_private = next(iter(trial.data.attacker.batches(cfg.batch_size)))
    with torch.no_grad():
        z = trial.method.release(x)
    targets = targets_of(x, y_task, y_private)
    counts = {}
    for name, attacker in attackers.items():
        attacker.net.train()
        counts[name] = flops(lambda a=attacker: a.loss(z, targets).backward()) / len(z)
    return counts


def whitebox_step_flops(trial, config) -> float:
    """FLOPs per image of one inversion step."""
    from trainables.attacks.attackers.whitebox import inversion_loss

    cfg = config.attacks.whitebox
    images = trial.data.test.images_at(slice(0, min(cfg.images, cfg.batch_size)))
    with torch.no_grad():
        target = trial.method.release(images)
    guess = images.clone().requires_grad_()
    with torch.enable_grad():
        return flops(lambda: inversion_loss(trial.method, guess, target, cfg.tv[0], 1).backward()) / len(images)


def measure(spec_path: Path, overrides: list[str]) -> tuple[list[dict], dict[str, float]]:
    from sweeps.spec import load_spec
    from trainables.attacks.attackers.whitebox import WhiteboxInversion
    from trainables.trial import Trial

    spec = load_spec(spec_path, ["search_space=null", *overrides])
    config = spec.trial_config()
    trial = Trial(config)
    metrics, _ = trial.run()
    per_image = train_step_flops(trial, config) + shadow_step_flops(trial, config)
    train_flops = per_image * len(trial.data.train) * metrics["train/epochs_run"]
    rows = [{"part": "train", "seconds": metrics["time/train_s"], "flops": train_flops,
             "note": f"{int(metrics['train/epochs_run'])} epochs, converged {int(metrics['train/converged'])}"}]
    per_step = attacker_step_flops(trial, config)
    for part, seconds in sorted(metrics.items()):
        if not part.startswith(TIME_PREFIX):
            continue
        name = part.removeprefix(TIME_PREFIX)
        row = {"part": name, "seconds": seconds, "flops": None, "note": ""}
        if name in per_step:
            epochs = metrics.get(f"attack/epochs_run/{name}", 0)
            row["flops"] = per_step[name] * len(trial.data.attacker) * epochs
            row["note"] = f"{int(epochs)} epochs, converged {int(metrics.get(f'attack/converged/{name}', 0))}"
        elif name == WhiteboxInversion.record_name():
            wb = config.attacks.whitebox
            images = min(wb.images, len(trial.data.test)) + (len(wb.tv) if len(wb.tv) > 1 else 0) * min(wb.selection_images, len(trial.data.val))
            row["flops"] = whitebox_step_flops(trial, config) * wb.steps * images
            row["note"] = f"{wb.steps} steps x {images} images"
        rows.append(row)
    summary = {"train_s": metrics["time/train_s"], "attack_s": metrics["time/attack_s"],
               "utility/acc": metrics["utility/acc"], "privacy/leak_acc": metrics["privacy/leak_acc"], "recon/ssim": metrics["recon/ssim"]}
    return rows, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops()
    start = time.perf_counter()
    rows, summary = measure(args.spec, args.overrides)
    wall = time.perf_counter() - start
    print(f"# {args.spec.name} {' '.join(args.overrides)}: {args.threads} threads, fp32 matmul peak {peak:.0f} GFLOP/s, trial wall {wall:.0f} s")
    print(f"# train {summary['train_s']:.0f} s, attacks {summary['attack_s']:.0f} s; utility {summary['utility/acc']:.3f}, "
          f"leakage {summary['privacy/leak_acc']:.3f}, SSIM {summary['recon/ssim']:.3f}")
    print("| part | s | GFLOP | GFLOP/s | % of peak | |")
    print("|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: -r["seconds"]):
        if row["flops"] is None:
            print(f"| {row['part']} | {row['seconds']:.1f} | - | - | - | {row['note']} |")
            continue
        rate = row["flops"] / 1e9 / max(row["seconds"], 1e-9)
        print(f"| {row['part']} | {row['seconds']:.1f} | {row['flops'] / 1e9:.0f} | {rate:.1f} | {100 * rate / peak:.0f} % | {row['note']} |")
    print(json.dumps({"threads": args.threads, "peak_gflops": peak, "wall_s": wall, **summary, "parts": rows}))


if __name__ == "__main__":
    main()
