"""`python -m sweeps run`: a Ray Tune experiment whose trials are the trial engine.

A launch lives in `<storage>/<experiment>/<launch>/` (`trainables/storage.py`: Tune's
storage path, `$PRIVSWEEP_STORAGE` or `<home>/ray_results`) with a `launch.json` that names
its MLflow parent run and Optuna study, Tune's experiment state and the trials' epoch state;
`--resume` continues the newest unfinished launch of the experiment (same folder, parent
run and study); without `--resume` every run is a new launch in a new folder. On a
multi-node cluster every node must reach the storage (`check_storage_shared`), so a trial
restarted on another node resumes from its last finished epoch and a lost head loses no
launch.

SIGTERM and SIGHUP (a `timeout`, `ray job stop`, a closed terminal) stop a launch the way
Ctrl-C does: Tune, which catches SIGINT while it fits, stops the running trials and saves
its state; the launcher then ends their child runs and the parent run as KILLED and prints
the command that resumes the launch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from sweeps.search_space import SearchSpace
from sweeps.spec import SweepSpec, load_spec
from sweeps.study_url import study_storage_url
from trainables.errors import InputError
from trainables.storage import Location, storage_root
from trainables.tracking import ParentRun, flatten, home

log = logging.getLogger(__name__)

# Snapshot Tune's experiment state every second (default: 10 s or more), so a driver killed
# with SIGKILL resumes with at most a second of trial bookkeeping lost. Behind a URI each
# snapshot uploads Tune's whole experiment folder again (every trial's result files: about
# 38 requests a second, three per object, for a launch of 4 tiny trials against a loopback
# S3), so there it is every 10 s.
EXPERIMENT_SNAPSHOT_S = "1"
REMOTE_SNAPSHOT_S = "10"
MISSING = "<absent>"
DRIVER_LOCK = "driver.lock"
TRIAL_STATE = "trial_state"  # the launch folder's trial state files (trainables.tune_trainable)
LAUNCH_RECORD = "launch.json"


@dataclass
class Launch:
    launch: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    parent_run_id: str
    study: str
    spec: dict
    status: str = "running"
    kind: str = "sweep"  # or "confirm" (`sweeps confirm`): each resumes only its own kind
    planned: int = 0  # Tune trials it sets out to finish (0: a launch from before it was recorded)

    @property
    def parent_run(self) -> ParentRun:
        return ParentRun.of(self.tracking_uri, self.parent_run_id)

    @property
    def location(self) -> Location:
        return Location(storage_root(), (self.experiment, self.launch))

    def save(self) -> None:
        (self.location / LAUNCH_RECORD).write(json.dumps(asdict(self), indent=2).encode())

    @classmethod
    def read(cls, record: Location) -> Launch:
        try:
            return cls(**json.loads(record.read()))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
            raise InputError(
                f"--resume: the launch record {record} is damaged ({error}); move it away to resume an "
                "older unfinished launch of this experiment, or run without --resume."
            ) from None

    @classmethod
    def latest_unfinished(cls, experiment: str, kind: str = "sweep") -> Launch:
        root = Location(storage_root(), (experiment,))
        records = [folder / LAUNCH_RECORD for folder in root.children(folders=True)]
        for record in sorted((r for r in records if r.exists()), key=Location.modified, reverse=True):
            launch = cls.read(record)
            if launch.status != "finished" and launch.kind == kind:
                return launch
        raise InputError(f"--resume: no unfinished {kind} launch of experiment {experiment!r} under {root}; run without --resume.")


def fixed_by_overrides(space: SearchSpace, overrides: list[str]) -> SearchSpace:
    """`--set params.sigma=2` fixes sigma: it leaves the search space."""
    fixed = {text.partition("=")[0].strip() for text in overrides}
    for path in sorted(fixed & set(space.common)):
        log.info("%s is fixed by --set and no longer swept", path)
    return SearchSpace({p: d for p, d in space.common.items() if p not in fixed}, space.by_method)


def check_launchable(spec: SweepSpec) -> None:
    """What `validate`, `run` and `confirm` check beyond the spec's own fields, before Ray:
    every objective is a metric the trials log, a trial pinned to a GPU gets one, and
    pyarrow opens the launch's storage; a slice too small to converge on is reported."""
    storage_root()
    if spec.train.device == "cuda" and spec.resources.gpu == 0:
        raise InputError(
            "train.device: cuda, but resources.gpu is 0, so Ray gives each trial no GPU and every trial would fail; "
            "set resources.gpu (1, or 0.25 to share one GPU among 4 trials), or train.device: auto."
        )
    check_objectives(spec)
    warn_unreachable_convergence(spec)


def warn_unreachable_convergence(spec: SweepSpec) -> None:
    """Say before Ray starts when the spec's slice is too small for any defense to converge
    under its cap (a spec without `dataset.train_size` trains on a full split: not checked)."""
    from trainables.trial import slice_shares, unreachable_convergence

    config = spec.trial_config()
    if config.dataset.train_size is None:
        return
    n_val, n_attacker = slice_shares(config, config.dataset.train_size)
    if reason := unreachable_convergence(config, config.dataset.train_size - n_val - n_attacker):
        log.warning("%s.", reason)


def check_objectives(spec: SweepSpec) -> None:
    from trainables.metric_keys import unknown_metric_reason

    config = spec.trial_config()
    for index, objective in enumerate(spec.objectives):
        reason = unknown_metric_reason(objective.metric, config)
        if reason:
            raise InputError(f"objectives[{index}].metric: {reason}.")


def init_ray(spec: SweepSpec) -> None:
    import ray

    storage = Location(storage_root())
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_SNAPSHOT_S if storage.local else REMOTE_SNAPSHOT_S)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Snapshots every second trip Tune's "excessive snapshot" warning; they are deliberate
    # (see EXPERIMENT_SNAPSHOT_S).
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    from sweeps.shared_storage import check_storage_shared

    check_storage_shared(storage / spec.experiment)
    if spec.resources.gpu > 0 and ray.cluster_resources().get("GPU", 0) == 0:
        raise InputError(
            f"resources.gpu: {spec.resources.gpu} GPU per trial requested but this Ray cluster has no GPU; "
            "set resources.gpu=0 (`--set resources.gpu=0`) or submit to a cluster with GPU workers."
        )
    available = ray.cluster_resources().get("CPU", 0)
    if spec.resources.cpu > available:
        raise InputError(f"resources.cpu: {spec.resources.cpu} CPUs per trial requested but the cluster has {available:g}.")


def load_sweep_data(spec: SweepSpec):
    """Decode (or memory-map) the dataset once per launch (`load_spec` has checked its
    attributes against the ones the dataset declares) and check the split fits its images."""
    from trainables.data import load_dataset
    from trainables.models import SplitArchitecture

    dataset = load_dataset(spec.dataset.name, spec.dataset.options, spec.dataset.root)
    SplitArchitecture(spec.model.backbone, spec.model.split, dataset.image_shape, spec.model.backbone_options())
    return dataset


def sweep_context(spec: SweepSpec, launch: Launch):
    from trainables.tune_trainable import SweepContext

    return SweepContext(
        base_config=spec.base_config(),
        objectives=tuple(o.metric for o in spec.objectives),
        tracking_uri=launch.tracking_uri,
        experiment_id=launch.experiment_id,
        parent_run_id=launch.parent_run_id,
        launch=launch.launch,
        threads=max(1, int(spec.resources.cpu)),
        trial_state=launch.location / TRIAL_STATE,
        replicates=spec.search.replicates,
        modes=tuple(o.mode for o in spec.objectives),
        screen=spec.search.screen if launch.kind == "sweep" else None,  # confirm re-runs finished configurations
    )


def trainable_of(function, spec: SweepSpec, launch: Launch, dataset):
    """`function` (a trainable of `trainables.tune_trainable`) with the launch's context and resources."""
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(function, dataset=dataset, context=sweep_context(spec, launch)),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )


def tune_run_config(spec: SweepSpec, launch: Launch, total: int):
    from ray import tune

    from sweeps.progress import SweepProgress

    progress = SweepProgress(total, spec.search.max_concurrent, [(o.metric, o.mode) for o in spec.objectives])
    return tune.RunConfig(
        name=launch.launch,
        storage_path=launch.location.parent.path,
        storage_filesystem=launch.location.fs,
        failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
        callbacks=[progress],
        verbose=0,
    )


def restored_tuner(launch: Launch, trainable):
    """The launch's Tuner from its folder, or None when Tune saved nothing to restore."""
    from ray import tune

    where, fs = launch.location.path, launch.location.fs
    if not tune.Tuner.can_restore(where, storage_filesystem=fs):
        return None
    return tune.Tuner.restore(where, trainable, resume_unfinished=True, resume_errored=False, restart_errored=False,
                              storage_filesystem=fs)


def build_tuner(spec: SweepSpec, space: SearchSpace, launch: Launch, dataset, num_samples: int, resume: bool):
    from ray import tune

    from sweeps.search import build_searcher
    from trainables.tune_trainable import run_sweep_trial

    trainable = trainable_of(run_sweep_trial, spec, launch, dataset)
    restored = restored_tuner(launch, trainable) if resume else None
    if restored is not None:
        return restored
    searcher = build_searcher(spec, space, study_storage_url(), launch.study)
    # Reusing actors is safe: a trial builds all its state from its config and seeds everything,
    # and it saves each trial a Python + torch start-up.
    tune_config = tune.TuneConfig(
        search_alg=searcher, num_samples=num_samples, max_concurrent_trials=spec.search.max_concurrent, reuse_actors=True
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=tune_run_config(spec, launch, num_samples))


def new_launch(spec: SweepSpec, planned: int, planned_runs: int, kind: str = "sweep") -> Launch:
    """A new launch of `planned` Tune trials, which between them run `planned_runs` child runs."""
    from sweeps.tracking import experiment_id, start_parent_run, tracking_uri

    uri = tracking_uri(spec)
    experiment = experiment_id(uri, spec.experiment)
    name = time.strftime("%Y-%m-%d_%H-%M-%S") + "_" + uuid.uuid4().hex[:6]
    parent = start_parent_run(uri, experiment, spec, name, kind, planned_runs).run_id
    launch = Launch(name, spec.experiment, experiment, uri, parent, f"{spec.experiment}/{name}",
                    spec.model_dump(mode="json", by_alias=True), kind=kind, planned=planned)
    launch.save()
    return launch


def summarise(results, spec: SweepSpec, launch: Launch, wall_s: float) -> dict[str, float]:
    from trainables.schema import FINAL_KEY, SCREENED_KEY

    finished = [r for r in results if r.error is None and r.metrics and r.metrics.get(FINAL_KEY)]
    screened = [r for r in results if r.error is None and r.metrics and r.metrics.get(SCREENED_KEY)]
    failed = [r for r in results if r.error is not None]
    planned = launch.planned or len(results)
    compute_s = sum(r.metrics.get("time_total_s", 0.0) for r in finished + screened)
    concurrency = min(spec.search.max_concurrent, max(len(finished), 1))
    overhead = wall_s / (compute_s / concurrency) if compute_s else math.nan
    note = f", {len(screened)} screened out (search.screen: dominated after the screening attack)" if screened else ""
    print(f"\n{len(finished)} of {planned} planned trial(s) finished, {len(failed)} failed{note} in {wall_s:.0f} s "
          f"(overhead: wall / (trial time / concurrency) = {overhead:.2f})", file=sys.stderr)
    return {"sweep/finished": len(finished), "sweep/failed": len(failed), "sweep/screened": len(screened), "sweep/planned": planned,
            "sweep/wall_s": wall_s, "sweep/overhead": overhead}


def report_front(launch: Launch, spec: SweepSpec) -> None:
    """The experiment's front report (`analysis.front_report`: every launch's finished trials)
    in `<home>/out/<experiment>`, logged to this launch's parent run (ended already, so the
    report counts this launch with its final status), whose description becomes the front's
    summary; then where to look, each command naming this store."""
    from sweeps.servers import where_to_look

    look = where_to_look(launch.tracking_uri, launch.experiment, launch.experiment_id, study_storage_url())
    try:
        from analysis import load_runs
        from analysis.front_report import log_front_report, write_front_report
        from analysis.objectives import parse_objectives
        from analysis.runs import launch_progress

        table = load_runs(launch.experiment, tracking_uri=launch.tracking_uri, group=True)
        if table.num_rows == 0:
            print("No finished trials: nothing on the Pareto front yet.", file=sys.stderr)
        else:
            objectives = parse_objectives([(o.metric, o.mode) for o in spec.objectives])
            folder = home() / "out" / launch.experiment
            launches = launch_progress(launch.experiment, launch.tracking_uri)
            report = write_front_report(table, objectives, folder, launch.tracking_uri, launches=launches)
            log_front_report(report, table, launch.tracking_uri, [launch.parent_run_id])
            print(report.summary, file=sys.stderr)
            launch.parent_run.describe(f"{report.summary}\nThe plots and tables are this run's artifacts, and in "
                                       f"`{folder}`.\n\n```\n{look}\n```\n")
            print(f"Front: {report.plot} (vector: {report.plot.with_suffix('.pdf')}); summary.md, front.csv and "
                  f"the hypervolume curve beside it, and in the parent run's artifacts.", file=sys.stderr)
    except (Exception, KeyboardInterrupt) as error:  # a convenience: the sweep's results are safe in MLflow
        log.warning("could not write the front report: %r", error)
    print(look, file=sys.stderr)


def launch(args) -> int:
    overrides = list(args.set) + ([f"search.num_samples={args.num_samples}"] if args.num_samples is not None else [])
    spec = load_spec(args.spec, overrides, args.smoke)
    space = fixed_by_overrides(spec.space(), args.set)
    check_launchable(spec)
    num_samples = spec.search.num_samples
    if spec.search.sampler == "grid":
        from sweeps.search import grid_size

        num_samples = min(num_samples, grid_size(space))
    with contextlib.ExitStack() as held:
        if args.resume:
            current = Launch.latest_unfinished(spec.experiment)
            check_same_configuration(current, spec)
            held.enter_context(driver_lock(current))
            current.planned = current.planned or num_samples
            current.parent_run.reopen()
        else:
            from sweeps.tracking import experiment_id, tracking_uri

            experiment_id(tracking_uri(spec), spec.experiment)  # a dead remote server fails here, before Ray starts
        from sweeps.search import study_storage

        study_storage(study_storage_url())  # so does a study database that cannot be opened
        dataset = load_sweep_data(spec)
        init_ray(spec)
        if not args.resume:
            current = new_launch(spec, num_samples, num_samples * spec.search.replicates)
            held.enter_context(driver_lock(current))
        print(f"launch {current.launch}: {num_samples} trial(s), {spec.search.max_concurrent} at a time, "
              f"folder {current.location}", file=sys.stderr)
        tuner = build_tuner(spec, space, current, dataset, num_samples, args.resume)
        return run_launch(tuner, spec, current, resume_command(args))


def fail_orphaned_trials(study_name: str) -> None:
    """Fail the study's trials still RUNNING once its launch finished: each was asked by a
    driver that was killed before it told the outcome, and no resume will (the searcher of
    the finished launch told all of its own)."""
    import optuna

    from sweeps.search import study_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=study_storage(study_storage_url()))
        orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in orphans:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    except KeyError:  # a launch that asked no searcher (`sweeps confirm`)
        return
    except Exception as error:  # the study database went away meanwhile: the launch's results stand
        log.warning("the study %s's orphaned trials were not failed: %s", study_name, error)
        return
    if orphans:
        print(f"{len(orphans)} Optuna trial(s) an earlier driver asked and never told marked FAIL", file=sys.stderr)


def driver_lock(launch: Launch) -> contextlib.AbstractContextManager:
    """Held by the driver running `launch`, acquired here (a context manager that releases it):
    a second driver of the same launch, such as a `--resume` beside the running one, exits 2.
    An advisory lock (flock): it ends with the process that holds it, however it ends."""
    lock = FileLock(str(driver_lock_path(launch)))
    try:
        return lock.acquire(timeout=0)  # on exit, releases this one acquisition
    except Timeout:
        raise InputError(
            f"launch {launch.launch} is being run by another driver (it holds {lock.lock_file}); wait for "
            "it to end, or stop it (Ctrl-C), then --resume."
        ) from None


def driver_lock_path(launch: Launch) -> Path:
    """In the launch folder on a local or mounted filesystem (so a driver on another machine
    that mounts it sees the lock too, where the filesystem supports flock); behind a URI,
    which has no locks, in `<home>/locks/`: it then keeps out a second driver on this machine
    only (on a cluster, drivers run on the head)."""
    folder = launch.location.local or home() / "locks" / launch.experiment / launch.launch
    folder.mkdir(parents=True, exist_ok=True)
    return folder / DRIVER_LOCK


def resume_command(args) -> str:
    """The command that resumes this launch: the same subcommand (`run` or `confirm`), spec
    and flags, and --resume."""
    flags = [f"--seeds {args.seeds}"] if getattr(args, "seeds", None) is not None else []
    flags += [f"--set {shlex.quote(assignment)}" for assignment in args.set]
    flags += [f"--num-samples {args.num_samples}"] if getattr(args, "num_samples", None) is not None else []
    flags += ["--smoke"] if args.smoke else []
    return " ".join([f"python -m sweeps {args.command}", shlex.quote(str(args.spec)), *flags, "--resume"])


def check_same_configuration(launch: Launch, spec: SweepSpec) -> None:
    """`--resume` continues the configuration the launch recorded: a spec or `--set` that
    resolves to another one would mix two configurations in one study and one front."""
    recorded, now = flatten(launch.spec), flatten(spec.model_dump(mode="json", by_alias=True))
    differing = sorted(key for key in recorded.keys() | now.keys() if recorded.get(key, MISSING) != now.get(key, MISSING))
    if not differing:
        return
    shown = "; ".join(f"{key}: {recorded.get(key, MISSING)!r} in the launch, {now.get(key, MISSING)!r} now" for key in differing[:6])
    more = f"; and {len(differing) - 6} more" if len(differing) > 6 else ""
    raise InputError(
        f"--resume: the spec and --set resolve to a different configuration from launch {launch.launch}'s "
        f"({shown}{more}); resume with the spec and --set it was launched with, or run without --resume to "
        "start a new launch."
    )


class StopSignals:
    """While active, SIGTERM and SIGHUP act as Ctrl-C (SIGINT), which Tune handles during
    `fit` by stopping its trials and saving its state; `received` is the first signal."""

    FORWARDED = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.received: int | None = None
        self.previous: dict[int, object] = {}

    def on_signal(self, signum, frame) -> None:
        self.received = self.received or signum
        signal.raise_signal(signal.SIGINT)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            self.previous = {s: signal.signal(s, self.on_signal) for s in self.FORWARDED}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    @property
    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)


def run_launch(tuner, spec: SweepSpec, current: Launch, resume_command: str) -> int:
    """Fit the launch's Tuner, summarise it, end the launch's parent run: FINISHED; KILLED,
    with its unfinished child runs, when a stop signal cut it short (then print the command
    that resumes it); or FAILED; and write the experiment's front report."""
    start = time.monotonic()
    status = "FAILED"
    metrics: dict[str, float] = {}
    with StopSignals() as stop:
        try:
            try:
                results = tuner.fit()
                metrics = summarise(results, spec, current, time.monotonic() - start)
            except KeyboardInterrupt:  # a second signal, or one outside Tune's handler
                metrics = {}
            if not metrics or metrics["sweep/finished"] + metrics["sweep/failed"] + metrics["sweep/screened"] < metrics["sweep/planned"]:
                status = "KILLED"
                return stop.exit_code
            status = "FINISHED"
            current.status = "finished"
            current.save()
            return 0 if metrics["sweep/finished"] > 0 else 1
        finally:
            killed = current.parent_run.kill_unfinished_children(current.experiment_id)
            if killed and status != "FINISHED":
                print(f"{killed} unfinished trial run(s) marked KILLED in MLflow; --resume reopens them", file=sys.stderr)
            elif killed:  # trials a killed driver started that its Tune snapshot never recorded: no resume reaches them
                print(f"{killed} trial run(s) an earlier driver left unfinished, and no resume reached, marked KILLED", file=sys.stderr)
            if status == "FINISHED":  # no trial of a finished launch resumes: its state files are garbage
                for leftover in (current.location / TRIAL_STATE).children(".pt"):
                    leftover.delete()
                fail_orphaned_trials(current.study)
            current.parent_run.end(status, metrics)
            report_front(current, spec)
            if status == "KILLED":
                print(f"interrupted: continue with `{resume_command}`", file=sys.stderr)
