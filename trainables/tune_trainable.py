"""The Ray Tune function trainable: one trial of a sweep, tracked in its MLflow child run.

Per epoch it logs the epoch metrics to MLflow, checkpoints the whole trial state and
reports to Tune; at the end it runs the attack suite, logs final metrics and artifacts and
reports them with `privsweep/final = 1`. Every report carries every objective (NaN until
the final one), so no trial can break the searcher by omitting a key. A trial restarted
from a checkpoint continues from its last epoch in the same MLflow run; one restarted
after it had already finished reports its logged results again instead of re-running.

Each epoch's state is first written (atomically) to the launch's `trial_state/<trial id>.pt`
(a path that, unlike Tune's per-session trial folder, survives a resume), then logged,
then reported: a driver killed between those steps loses no epoch, because Tune's
checkpoint is only registered in its next experiment snapshot while this file is already
on disk. A restart resumes from whichever of the two is further along and logs to MLflow
any finished epoch the run lacks, so every epoch is trained once and logged once. (On a
multi-node cluster without a shared filesystem the file stays on the worker that wrote it;
a resume elsewhere falls back to Tune's checkpoint.)
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from trainables.artifacts import write_artifacts
from trainables.config import CONDITIONAL_SEPARATOR, TrialConfig, with_assignment
from trainables.data import Dataset
from trainables.tracking import TrialRun, flatten, run_name
from trainables.trial import Trial, load_checkpoint

FINAL_KEY = "privsweep/final"
CHECKPOINT_FILE = "trial.pt"
TRAIN_KEY = "train/task_loss"  # logged every epoch by every method


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a launch shares (sent once with `tune.with_parameters`)."""

    base_config: dict
    objectives: tuple[str, ...]
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    launch: str
    threads: int
    state_dir: str  # the launch's folder for the trials' own epoch state (stable across resumes)


def _report(metrics: dict[str, float], objectives: tuple[str, ...], final: bool, checkpoint_dir: str | None = None) -> None:
    payload = {key: metrics.get(key, math.nan) for key in objectives}
    payload.update(metrics)
    payload[FINAL_KEY] = 1.0 if final else 0.0
    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    tune.report(payload, checkpoint=checkpoint)


def save_atomically(trial: Trial, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    trial.save(partial)
    os.replace(partial, path)


def restore_latest(trial: Trial, durable: Path, checkpoint: tune.Checkpoint | None) -> None:
    """Restore the further along of the trial's own file and Tune's checkpoint (if any)."""
    candidates = []
    if durable.exists():
        candidates.append(load_checkpoint(durable, trial.device))
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            candidates.append(load_checkpoint(Path(folder) / CHECKPOINT_FILE, trial.device))
    if candidates:
        trial.load_state_dict(max(candidates, key=lambda state: state["epoch"]))


def run_sweep_trial(assignment: dict, dataset: Dataset, context: SweepContext) -> None:
    torch.set_num_threads(context.threads)
    config = TrialConfig.model_validate(with_assignment(context.base_config, assignment))
    trial_id = tune.get_context().get_trial_id()
    run = TrialRun.open(
        context.tracking_uri, context.experiment_id, context.parent_run_id, trial_id, context.launch,
        config.method, run_name(config.method, {k: v for k, v in assignment.items() if CONDITIONAL_SEPARATOR not in k}), flatten(config.model_dump(mode="json", by_alias=True)),
    )
    try:
        finished = run.final_metrics()
        if finished is not None:
            _report(finished, context.objectives, final=True)
            return
        trial = Trial(config, dataset)
        durable = Path(context.state_dir) / f"{trial_id}.pt"
        restore_latest(trial, durable, tune.get_checkpoint())
        logged = run.logged_steps(TRAIN_KEY)
        for epoch, metrics in enumerate(trial.history, start=1):
            if epoch not in logged:
                run.log(metrics, step=epoch)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            save_atomically(trial, durable)
            run.log(metrics, step=epoch)
            with tempfile.TemporaryDirectory() as folder:
                trial.save(Path(folder) / CHECKPOINT_FILE)
                _report({**metrics, "epoch": epoch}, context.objectives, final=False, checkpoint_dir=folder)

        metrics, report = trial.run(on_epoch)
        with tempfile.TemporaryDirectory() as folder:
            write_artifacts(Path(folder), config, metrics, report, trial.method)
            run.log_artifacts(Path(folder))
        for epoch in range(1, max(map(len, report.curves.values()), default=0) + 1):
            run.log({f"val/attack/{name}": scores[epoch - 1] for name, scores in report.curves.items() if len(scores) >= epoch}, step=epoch)
        run.log(metrics, step=trial.epoch)
        run.finish()
        _report(metrics, context.objectives, final=True)
    except BaseException as error:
        run.fail(error)
        raise
