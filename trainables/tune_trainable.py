"""The Ray Tune function trainable: one trial of a sweep, tracked in its MLflow child run.

Per epoch it logs the epoch metrics to MLflow, checkpoints the whole trial state and
reports to Tune; at the end it runs the attack suite, logs final metrics and artifacts and
reports them with `privsweep/final = 1`. Every report carries every objective (NaN until
the final one), so no trial can break the searcher by omitting a key. A trial restarted
from a checkpoint continues from its last epoch in the same MLflow run; one restarted
after it had already finished reports its logged results again instead of re-running.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from trainables.artifacts import write_artifacts
from trainables.config import CONDITIONAL_SEPARATOR, TrialConfig, with_assignment
from trainables.data import Dataset
from trainables.tracking import TrialRun, flatten, run_name
from trainables.trial import Trial

FINAL_KEY = "privsweep/final"
CHECKPOINT_FILE = "trial.pt"


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


def _report(metrics: dict[str, float], objectives: tuple[str, ...], final: bool, checkpoint_dir: str | None = None) -> None:
    payload = {key: metrics.get(key, math.nan) for key in objectives}
    payload.update(metrics)
    payload[FINAL_KEY] = 1.0 if final else 0.0
    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    tune.report(payload, checkpoint=checkpoint)


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
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                trial.restore(Path(folder) / CHECKPOINT_FILE)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            run.log(metrics, step=epoch)
            with tempfile.TemporaryDirectory() as folder:
                trial.save(Path(folder) / CHECKPOINT_FILE)
                _report({**metrics, "epoch": epoch}, context.objectives, final=False, checkpoint_dir=folder)

        metrics, report = trial.run(on_epoch)
        with tempfile.TemporaryDirectory() as folder:
            write_artifacts(Path(folder), config, metrics, report, trial.method)
            run.log_artifacts(Path(folder))
        run.log(metrics, step=trial.epoch)
        run.finish()
        _report(metrics, context.objectives, final=True)
    except BaseException as error:
        run.fail(error)
        raise
