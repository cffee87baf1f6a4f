"""The Ray Tune function trainable: one configuration of a sweep, each of its seed
replicates tracked in its own MLflow child run.

`search.replicates: k` runs replicates 0..k-1 (train.seed + r) one after the other in the
same Tune trial; the final report to Tune, and so to the searcher, is the replicate mean of
every final metric (`privsweep/replicates` = k). `sweeps confirm` runs the replicates a
finished configuration still lacks through `run_confirm_trial`.

Per replicate and epoch it saves the whole trial state, logs the epoch metrics to MLflow
and reports to Tune; at the end of a replicate it runs the attack suite and logs final
metrics and artifacts; after the last replicate it reports their mean with
`privsweep/final = 1`. Every report carries every objective (NaN until the final one), so
no trial can break the searcher by omitting a key. A replicate restarted from its saved state
continues from its last epoch in the same MLflow run; one restarted after it had already
finished contributes its logged results instead of re-running. A configuration and seed
that already finished in this launch (before or after a resume) is not trained again: the
trial reports that run's results, so the searcher learns them and no second run of it
enters the front (two trials proposing it at the same moment both train; earlier launches
do not count, as the code may have changed since). Seed replicates are different seeds,
so they always run.

Each epoch's state is first written (atomically) to the launch's
`trial_state/<trial id>[-r<replicate>].pt` in Tune's storage (`trainables/storage.py`: a
folder every node sees, or s3:// / gs://, through pyarrow.fs; a path that, unlike Tune's
per-session trial folder, survives a resume), then logged, then reported: a driver killed
between those steps loses no epoch. A restart, on this node or any other, resumes from that
file and logs to MLflow any finished epoch the run lacks, so every epoch is trained once and
logged once. The file carries a checksum (`trainables/durable.py`; fsynced on a local
filesystem); one that
cannot be used (empty, cut short, altered, not a state) is moved aside to
`<name>.corrupt-<time>`, the run is tagged `privsweep.state_set_aside` with why, and the
trial starts again from scratch. Once its run has finished (or been screened) the file is
removed: its results are in MLflow and its client's weights in the run's `client.pt`, while
the state (every network and optimiser of the method) grows with the backbone and would be
kept for every trial of every launch; a set-aside `.corrupt-<time>` file is kept. A launch
that finishes removes the files of trials its Tune snapshot lost (started by a driver killed
before the snapshot recorded them: no resume reaches them) and ends their runs KILLED.

No Tune checkpoint is reported. With one per epoch (`num_to_keep=1`), a driver killed
within a second of a trial's new checkpoint left an experiment snapshot naming the
checkpoint that the new one had deleted, and the resumed trial died in Tune's restore
("Could not recover from checkpoint as it does not exist on storage anymore", before this
code runs) and was told FAIL, though its state file and its run were intact: once in 5
runs of the SIGKILL-resume test here. Without a checkpoint, Tune restarts the trial and this
file carries it on.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.artifacts import FRONT_POINT, trial_summary, write_artifacts, write_front_point
from trainables.config import CONDITIONAL_SEPARATOR, TrialConfig, with_assignment
from trainables.data import Dataset
from trainables.durable import UnreadableState
from trainables.methods import method_class
from trainables.schema import (
    ASSIGNMENT_TAG,
    CONFIG_ID_TAG,
    CONTROL_TAG,
    DEVICE_TAG,
    FINAL_KEY,
    NOTE_TAG,
    REPLICATES_KEY,
    SCREENED_KEY,
    SCREENED_TAG,
    STARTS_TAG,
    STATE_SET_ASIDE_TAG,
    Start,
)
from trainables.screening import (
    best_case,
    is_dominated,
    is_screened,
    launch_front,
    preserved_rng,
    screened_metrics,
    screening_budget,
)
from trainables.storage import LocalCopy, Location
from trainables.tracking import TrialRun, configuration_id, finished_twin, flatten, run_name
from trainables.trial import Trial

log = logging.getLogger(__name__)

TRAIN_KEY = "train/task_loss"  # logged every epoch by every method
# A trial's final metrics are logged at step 0, its per-epoch curves at steps 1, 2, ...: the
# MLflow UI draws a key whose latest step is 0 as a bar with its value and one at a later step
# as a line chart, where a single final value was a lone dot (`dataTraceMetricsContainMultipleEpochs`).
FINAL_STEP = 0


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
    trial_state: Location  # the launch's folder for the trials' own epoch state (stable across resumes)
    replicates: int = 1  # seeds per sampled configuration (`search.replicates`)
    modes: tuple[str, ...] = ()  # each objective's "max" or "min"
    screen: float | None = None  # `search.screen`: the screening attack's fraction of the budget; None = off

    @property
    def objective_modes(self) -> list[tuple[str, str]]:
        """(metric, mode) per objective, as `analysis` and `trainables.screening` read them."""
        return list(zip(self.objectives, self.modes, strict=True))


def _report(metrics: dict[str, float], objectives: tuple[str, ...], final: bool, screened: bool = False) -> None:
    payload = {key: metrics.get(key, math.nan) for key in objectives}
    payload.update(metrics)
    payload[FINAL_KEY] = 1.0 if final else 0.0
    payload[SCREENED_KEY] = 1.0 if screened else 0.0
    tune.report(payload)


def resumed_trial(config: TrialConfig, dataset: Dataset | None, state: LocalCopy, run: TrialRun) -> Trial:
    """The trial, continued from its state file if it has one. A state file that cannot be
    used (`trainables.durable.UnreadableState`) is set aside as `<name>.corrupt-<time>`, the
    run is tagged with why, and the trial starts again from scratch."""
    trial = Trial(config, dataset)
    if not state.fetch():
        return trial
    try:
        trial.restore(state.path)
    except UnreadableState as error:
        size = state.path.stat().st_size
        aside = state.location.set_aside()
        log.warning("state file %s (%d bytes) cannot be used: %s; moved to %s, and the trial starts again from scratch",
                    state.location, size, error.reason, aside.name)
        run.log(tags={STATE_SET_ASIDE_TAG: f"{aside.name}: {error.reason}"})
        return Trial(config, dataset)
    return trial


def replicate_config(config: TrialConfig, replicate: int) -> TrialConfig:
    """Replicate r of a configuration runs with train.seed + r: the defense's initialisation
    and randomness and the attackers' initialisation move; the data slice does not."""
    return config.model_copy(update={"train": config.train.model_copy(update={"seed": config.train.seed + replicate})})


def replicate_mean(finals: list[dict[str, float]]) -> dict[str, float]:
    """What the searcher is told: each final metric's mean over the replicates."""
    keys = set.intersection(*(set(final) for final in finals))
    mean = {key: sum(final[key] for final in finals) / len(finals) for key in sorted(keys)}
    mean[REPLICATES_KEY] = float(len(finals))
    return mean


def run_sweep_trial(assignment: dict, dataset: Dataset, context: SweepContext) -> None:
    """A sampled configuration under `search.replicates` seeds (replicates 0..k-1)."""
    run_configuration(assignment, range(context.replicates), dataset, context)


def run_confirm_trial(config: dict, dataset: Dataset, context: SweepContext) -> None:
    """`sweeps confirm`: the replicates a configuration still lacks (`config["job"]`)."""
    run_configuration(config["job"]["assignment"], config["job"]["replicates"], dataset, context)


def run_configuration(assignment: dict, replicates, dataset: Dataset, context: SweepContext) -> None:
    """Each replicate in its own MLflow child run, all tagged with the configuration id;
    Tune (and so the searcher) gets the replicate mean."""
    torch.set_num_threads(context.threads)
    base = TrialConfig.model_validate(with_assignment(context.base_config, assignment))
    config_id = configuration_id(base.model_dump(mode="json", by_alias=True))
    finals = []
    for replicate in replicates:
        final = run_replicate(base, replicate, config_id, assignment, dataset, context)
        if is_screened(final):  # dominated after its screening attack: no further seed, no final report
            _report(final, context.objectives, final=False, screened=True)
            return
        finals.append(final)
    _report(replicate_mean(finals), context.objectives, final=True)


def screen(trial: Trial, context: SweepContext) -> dict[str, float] | None:
    """The screening attack (`trainables.screening`): the screened metrics when the trial's
    best case is dominated by the launch's front, else None (the full suite runs)."""
    objectives = context.objective_modes
    with preserved_rng():
        metrics, _ = trial.attack(screening_budget(trial.config.attacks, context.screen))
    front = launch_front(context.tracking_uri, context.experiment_id, context.launch, objectives, context.replicates)
    if not is_dominated(metrics, front, objectives):
        log.info("screening: not dominated by the %d front configuration(s) so far; the full attack suite runs", len(front))
        return None
    log.info("screening: dominated by the launch's front at best case %s; the full attack is skipped",
             dict(zip(context.objectives, best_case(metrics, objectives), strict=True)))
    return screened_metrics(metrics)


def log_front_point(run: TrialRun, context: SweepContext) -> None:
    """`FRONT_POINT` on the finished trial's run: its point among the launch's trials
    finished so far. A figure for the run's page only: when it cannot be drawn, a warning
    says why and the trial's results stand."""
    try:
        experiment = run.client.get_experiment(context.experiment_id).name
        with tempfile.TemporaryDirectory() as folder:
            write_front_point(Path(folder), context.tracking_uri, experiment, context.launch, run.run_id, context.objective_modes)
            run.log_artifacts(Path(folder))
    except Exception as error:  # whatever the store or matplotlib raises, the figure never fails a finished trial
        log.warning("%s not drawn for run %s: %s", FRONT_POINT, run.run_id, error)


def device_description(device: torch.device) -> str:
    """`cpu`, or `cuda <name> <uuid>`: the UUID names the physical GPU whatever index Ray's
    CUDA_VISIBLE_DEVICES gives it, so trials sharing one GPU (resources.gpu < 1) show it."""
    if device.type != "cuda":
        return device.type
    properties = torch.cuda.get_device_properties(device)
    return f"cuda {properties.name} {getattr(properties, 'uuid', '')}".strip()


def starts(run: TrialRun, epoch: int) -> str:
    """The run's `privsweep.starts` with this start added: the Ray node it runs on and the
    epoch its training goes on from (0: from scratch)."""
    start = Start(ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()[:8], epoch)
    return "\n".join(filter(None, [run.tag(STARTS_TAG), start.line()]))


def run_replicate(base: TrialConfig, replicate: int, config_id: str, assignment: dict, dataset: Dataset, context: SweepContext) -> dict[str, float]:
    config = replicate_config(base, replicate)
    trial_id = tune.get_context().get_trial_id()
    shown = {k: v for k, v in assignment.items() if CONDITIONAL_SEPARATOR not in k}
    name = run_name(config.method, {**shown, **({"train.seed": config.train.seed} if replicate else {})})
    tags = {CONFIG_ID_TAG: config_id, ASSIGNMENT_TAG: json.dumps(assignment)}  # in the searcher's order: run names keep it
    control = method_class(config.method).control
    if control is not None:
        tags[CONTROL_TAG] = json.dumps({"method": control.method, "shared": control.shared_paths})
    if TrialRun.find(context.tracking_uri, context.experiment_id, trial_id, context.launch, replicate) is None:
        twin = finished_twin(context.tracking_uri, context.experiment_id, context.launch, config_id, config.train.seed)
        if twin is not None:  # the searcher proposed a finished configuration again: tell it the stored result
            log.info("%s (seed %d) already finished in run %s: its results are reused, nothing is trained",
                     name, config.train.seed, twin.run_id)
            return twin.final_metrics()
    run = TrialRun.open(
        context.tracking_uri, context.experiment_id, context.parent_run_id, trial_id, context.launch,
        config.method, name, flatten(config.model_dump(mode="json", by_alias=True)), replicate=replicate, tags=tags,
    )
    suffix = f"-r{replicate}" if replicate else ""  # replicate 0: the names of a launch from before replicates
    state = context.trial_state / f"{trial_id}{suffix}.pt"
    try:
        finished = run.final_metrics()
        if finished is not None:
            state.delete()  # left by a driver that died between finish and removal
            return finished
        if run.tag(SCREENED_TAG) == "true":  # screened, then stopped before its run ended: stays screened
            run.finish()
            state.delete()
            return run.metrics()
        with LocalCopy(state) as copy:
            trial = resumed_trial(config, dataset, copy, run)
            run.log(tags={DEVICE_TAG: device_description(trial.device), STARTS_TAG: starts(run, trial.epoch)})
            logged = run.logged_steps(TRAIN_KEY)
            for epoch, metrics in enumerate(trial.history, start=1):
                if epoch not in logged:
                    run.log(metrics, step=epoch)

            def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                trial.save(copy.path)
                copy.save()
                run.log(metrics, step=epoch)
                _report({**metrics, "epoch": epoch, "replicate": replicate}, context.objectives, final=False)

            trial.train(on_epoch)
        if context.screen is not None and replicate == 0:  # only a configuration's first seed is screened
            screened = screen(trial, context)
            if screened is not None:
                run.log(screened, step=FINAL_STEP, tags={SCREENED_TAG: "true"})
                run.finish()
                state.delete()
                return screened
        metrics, report = trial.attack()
        with tempfile.TemporaryDirectory() as folder:
            write_artifacts(Path(folder), config, metrics, report, trial.method, trial.history, context.objectives)
            run.log_artifacts(Path(folder))
        for epoch in range(1, max(map(len, report.curves.values()), default=0) + 1):
            run.log({f"val/attack/{attacker}": scores[epoch - 1] for attacker, scores in report.curves.items() if len(scores) >= epoch}, step=epoch)
        run.log(metrics, step=FINAL_STEP, tags={NOTE_TAG: trial_summary(metrics, context.objectives)})
        run.finish()
        state.delete()
        log_front_point(run, context)
        return metrics
    except (KeyboardInterrupt, SystemExit):  # Tune stopped the trial (its launch was interrupted): resumable
        run.finish("KILLED")
        raise
    except BaseException as error:
        run.fail(error)
        raise
