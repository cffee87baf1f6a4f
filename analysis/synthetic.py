"""A small fake sweep in exactly the launcher's MLflow layout, for tests and for trying the
analysis (notebook, CLI) without training anything.

    python -m analysis.synthetic --tracking-uri sqlite:////tmp/demo/mlflow.db
    python -m analysis pareto --experiment synthetic_sweep --tracking-uri sqlite:////tmp/demo/mlflow.db
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.objectives import DEFAULT_OBJECTIVES, ObjectivesLike, parse_objectives
from trainables.schema import (
    ERROR_TAG,
    LAUNCH_TAG,
    METHOD_TAG,
    OBJECTIVES_TAG,
    ROLE_TAG,
    TRIAL_ID_TAG,
)

BASE_CONFIG = {
    "dataset.name": "synthetic", "dataset.task": "shape", "dataset.private": "color",
    "model.backbone": "small_cnn", "train.epochs": 2, "train.batch_size": 64, "train.lr": 0.001, "train.seed": 0,
}

# (launch, method, swept params, utility/acc, privacy/leak_acc, recon/ssim, status)
# Finished and finite: the combined front (utility max, leakage min) is every row marked *.
DEFAULT_TRIALS: tuple[tuple, ...] = (
    ("L1", "none", {"model.split": 2}, 0.92, 0.95, 0.81, "FINISHED"),  # *
    ("L1", "none", {"model.split": 4}, 0.91, 0.93, 0.62, "FINISHED"),  # *
    ("L1", "noisy_arl", {"params.sigma": 0.5, "params.lambda": 0.01, "model.split": 2}, 0.90, 0.80, 0.55, "FINISHED"),  # *
    ("L1", "noisy_arl", {"params.sigma": 1.0, "params.lambda": 0.1, "model.split": 3}, 0.86, 0.62, 0.40, "FINISHED"),  # *
    ("L1", "noisy_arl", {"params.sigma": 2.0, "params.lambda": 0.1, "model.split": 3}, 0.80, 0.66, 0.35, "FINISHED"),
    ("L1", "noisy_arl", {"params.sigma": 4.0, "params.lambda": 1.0, "model.split": 4}, 0.72, 0.41, 0.12, "FINISHED"),  # *
    ("L1", "noisy_arl", {"params.sigma": 0.1, "params.lambda": 0.001, "model.split": 1}, 0.95, float("nan"), 0.90, "FINISHED"),
    ("L1", "noisy_arl", {"params.sigma": 8.0, "params.lambda": 2.0, "model.split": 1}, None, None, None, "FAILED"),
    ("L1", "disco", {"params.rho": 0.5, "params.pruning_ratio": 0.2, "model.split": 2}, 0.88, 0.70, 0.50, "FINISHED"),  # *
    ("L1", "disco", {"params.rho": 1.0, "params.pruning_ratio": 0.5, "model.split": 3}, 0.84, 0.64, 0.30, "FINISHED"),
    ("L1", "disco", {"params.rho": 2.0, "params.pruning_ratio": 0.8, "model.split": 4}, 0.65, 0.45, 0.10, "FINISHED"),
    ("L2", "noisy_arl", {"params.sigma": 3.0, "params.lambda": 0.5, "model.split": 4}, 0.78, 0.50, 0.20, "FINISHED"),  # *
    ("L2", "disco", {"params.rho": 1.0, "params.pruning_ratio": 0.3, "model.split": 3}, 0.86, 0.62, 0.33, "FINISHED"),  # * (tie)
    ("L2", "noisy_arl", {"params.sigma": 1.5, "params.lambda": 0.2, "model.split": 2}, None, None, None, "RUNNING"),
)


def _images(seed: int, ssim: float | None, n: int = 4, size: int = 16) -> np.ndarray:
    """Originals (top row) over 'reconstructions' (bottom row), blurrier when SSIM is low."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    tiles = []
    for i in range(n):
        colour = rng.uniform(0.2, 1.0, 3)
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r**2) if i % 2 else (np.abs(xx - cx) + np.abs(yy - cy) < r)
        tiles.append(np.where(mask[..., None], colour, 0.1))
    quality = 0.0 if ssim is None else float(np.clip(ssim, 0, 1))
    recon = [quality * t + (1 - quality) * (t.mean() + 0.15 * rng.standard_normal(t.shape)) for t in tiles]
    pad = np.ones((size, 2, 3))
    rows = [np.concatenate(sum(([t, pad] for t in row), [])[:-1], axis=1) for row in (tiles, recon)]
    return np.clip(np.concatenate([rows[0], np.ones((2, rows[0].shape[1], 3)), rows[1]]), 0, 1)


TEST_IMAGES = 2000  # the size of the test slice the fake intervals pretend to come from


def _with_intervals(metrics: dict[str, float]) -> dict[str, float]:
    """Beside each test-set metric, a 95 % interval as wide as a 2,000-image test slice gives
    (binomial for rates in [0, 1], 2 % of the value otherwise), like the trainable logs."""
    intervals = {}
    for key, value in metrics.items():
        if key.startswith(("client/", "time/")):
            continue
        rate = 0.0 <= value <= 1.0
        half = 1.96 * np.sqrt(max(value * (1 - value), 0.01) / TEST_IMAGES) if rate else 0.02 * abs(value)
        intervals[f"{key}:ci95_lo"], intervals[f"{key}:ci95_hi"] = value - half, value + half
    return {**metrics, **intervals}


# The trial whose defense reached its epoch cap (`train/converged` 0): a front point the
# analysis must flag as undertrained.
UNDERTRAINED_TRIAL = 5


def _metrics(acc: float, leak: float, ssim: float, split: int, converged: bool) -> dict[str, float]:
    # per threat model: the decoders (query) are the strongest; the white-box inversion is
    # weaker the shallower the split (a front of its own, not a monotone copy of the overall one)
    outcome = {"train/epochs_run": 2.0, "train/converged": float(converged)}  # BASE_CONFIG's cap: 2 epochs
    return outcome | _with_intervals({
        "utility/acc": acc, "utility/acc_retrained": acc - 0.01, "utility/mcc": 2 * acc - 1,
        "privacy/leak_acc": leak, "privacy/leak_acc/server_arch": leak, "privacy/leak_acc/mlp": leak - 0.02,
        "privacy/leak_acc:query": leak, "privacy/leak_chance": 0.3, "privacy/delta": acc - leak,
        "recon/ssim": ssim, "recon/ssim:query": ssim, "recon/ssim:white_box": ssim * (0.5 + 0.1 * split), "recon/psnr": 10 + 20 * ssim, "recon/mse": 0.1 * (1 - ssim), "recon/l1": 0.2 * (1 - ssim),
        "client/gflops": 0.01 * split, "client/params_mb": 0.1 * split, "time/train_s": 3.0, "time/attack_s": 2.0,
    })


def write_synthetic_sweep(
    tracking_uri: str,
    experiment: str = "synthetic_sweep",
    *,
    artifact_location: str | None = None,
    trials: Sequence[tuple] = DEFAULT_TRIALS,
    objectives: ObjectivesLike = None,
    spec_method: str = "noisy_arl",
) -> dict[str, Any]:
    """Write the fake sweep; returns ids: experiment_id, parents {launch: run id}, trials [...]."""
    import yaml
    from matplotlib import image
    from mlflow.entities import Metric, Param, RunTag

    from trainables.tracking import sqlite_path, tracking_client

    store = sqlite_path(tracking_uri)
    if artifact_location is None and store is not None:
        # like the launcher: mlartifacts/ beside mlflow.db (MLflow's default would be ./mlruns in the cwd)
        artifact_location = (store.resolve().parent / "mlartifacts" / experiment).as_uri()
    client = tracking_client(tracking_uri)
    experiment_id = client.create_experiment(experiment, artifact_location=artifact_location)
    objectives = parse_objectives(objectives) if objectives is not None else DEFAULT_OBJECTIVES
    objectives_tag = json.dumps([{"metric": o.metric, "mode": o.mode} for o in objectives])
    parents: dict[str, str] = {}
    for launch in dict.fromkeys(t[0] for t in trials):
        parent = client.create_run(experiment_id, run_name=f"{experiment} {launch}", tags={
            ROLE_TAG: "sweep", LAUNCH_TAG: launch, OBJECTIVES_TAG: objectives_tag, METHOD_TAG: spec_method,
        })
        parents[launch] = parent.info.run_id
    made = []
    with tempfile.TemporaryDirectory() as scratch:
        for index, (launch, method, swept, acc, leak, ssim, status) in enumerate(trials):
            params: dict[str, Any] = {"method": method, **BASE_CONFIG, **swept}
            name = " ".join([method] + [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in swept.items()])
            run = client.create_run(experiment_id, run_name=name, tags={
                "mlflow.parentRunId": parents[launch], ROLE_TAG: "trial", METHOD_TAG: method,
                LAUNCH_TAG: launch, TRIAL_ID_TAG: f"trial_{index:03d}",
            })
            run_id = run.info.run_id
            split = int(swept.get("model.split", 2))
            final = _metrics(acc, leak, ssim, split, index != UNDERTRAINED_TRIAL) if acc is not None else {}
            history = [Metric(key, value, 0, epoch) for epoch in range(2)
                       for key, value in (("train/task_loss", 1.0 / (epoch + 1)), ("val/utility_acc", 0.5 + 0.1 * epoch))]
            client.log_batch(
                run_id,
                metrics=history + [Metric(k, float(v), 0, 0) for k, v in final.items()],
                params=[Param(k, str(v)) for k, v in params.items()],
                tags=[RunTag(ERROR_TAG, "RuntimeError: diverged")] if status == "FAILED" else [],
            )
            if final:
                folder = Path(scratch) / run_id
                folder.mkdir()
                image.imsave(folder / "reconstructions.png", _images(index, ssim))
                (folder / "config.yaml").write_text(yaml.safe_dump(params))
                (folder / "metrics.json").write_text(json.dumps(final, indent=2, sort_keys=True))
                client.log_artifacts(run_id, str(folder))
            if status != "RUNNING":
                client.set_terminated(run_id, status)
            made.append({"run_id": run_id, "launch": launch, "method": method, "status": status,
                         "utility/acc": acc, "privacy/leak_acc": leak, **swept})
    for parent_id in parents.values():
        client.set_terminated(parent_id, "FINISHED")
    return {"experiment_id": experiment_id, "parents": parents, "trials": made}


def front_run_ids(info: Mapping[str, Any]) -> set[str]:
    """The combined-front run ids of DEFAULT_TRIALS (utility max, leakage min), by hand."""
    front = {(0.92, 0.95), (0.91, 0.93), (0.90, 0.80), (0.88, 0.70), (0.86, 0.62), (0.78, 0.50), (0.72, 0.41)}
    return {t["run_id"] for t in info["trials"]
            if t["status"] == "FINISHED" and (t["utility/acc"], t["privacy/leak_acc"]) in front}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", default="synthetic_sweep")
    args = parser.parse_args(argv)
    info = write_synthetic_sweep(args.tracking_uri, args.experiment)
    print(f"wrote experiment {args.experiment!r} ({len(info['trials'])} trials) to {args.tracking_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
