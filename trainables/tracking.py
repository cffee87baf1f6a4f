"""MLflow store access: the store location, a retrying client, and the runs of a launch
(`StoreRun`: a launch's `ParentRun` and each trial's `TrialRun`).

Layout (docs/design.md; the tag names are in `trainables.schema`): one experiment per sweep
name; one parent run per launch (role `sweep`); one child run per trial and seed replicate
(`mlflow.parentRunId`, role `trial`, method, launch, trial id, replicate), params = the
flattened trial config, metrics logged in batches, artifacts from the trial. The replicates
of one configuration share a configuration id (`configuration_id`: the config without its
seed, hashed) and carry the searcher's assignment as JSON, from which `sweeps confirm`
re-runs a configuration under more seeds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from trainables.schema import (
    CONFIG_ID_TAG,
    ERROR_TAG,
    LAUNCH_TAG,
    METHOD_TAG,
    NOTE_TAG,
    PARAM_SYMBOLS,
    REPLICATE_TAG,
    ROLE_TAG,
    TRIAL_ID_TAG,
    tag_is,
)

T = TypeVar("T")

PACKAGES_ROOT = Path(__file__).resolve().parent.parent  # a source checkout's root, or site-packages
MAX_PARAM_LENGTH = 6000


def home() -> Path:
    """Where mlflow.db, mlartifacts/, optuna.db, ray_results/ and out/ live: `$PRIVSWEEP_HOME`;
    else, run from a source checkout, its root; else (an installed package, whose own folder
    is site-packages) `$XDG_DATA_HOME/privsweep`, by default `~/.local/share/privsweep`,
    created private (0700) on first use."""
    if "PRIVSWEEP_HOME" in os.environ:
        return Path(os.environ["PRIVSWEEP_HOME"]).expanduser().resolve()
    if (PACKAGES_ROOT / "pyproject.toml").is_file():
        return PACKAGES_ROOT
    user_data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser()
    folder = (user_data / "privsweep").resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def default_tracking_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    return (home() / "mlartifacts").as_uri()


def tracking_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient on the store; every privsweep process opens stores here, under
    `sqlite_store_lock` (a later open in the same process is cached by MLflow and holds the
    lock for microseconds). A server store migrates in its own process."""
    with sqlite_store_lock(tracking_uri):
        return MlflowClient(tracking_uri)


@contextmanager
def sqlite_store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock on `<db>.lock` beside a SQLite store, held while a process opens it.

    The first open of a SQLite store without tables creates them (MLflow's and Optuna's
    alembic migrations). Two processes doing that at once crash one of them: MLflow 3.17
    with "duplicate column name: step" or "table ... already exists", 3 rounds in 3 with two
    processes opening a fresh store together, and in a CI run where a test polled the store
    while the launcher opened it; Optuna 4 with "UNIQUE constraint failed:
    alembic_version.version_num", 1 round in 3 (two launches on a fresh home). Not SQLite,
    or a folder that does not exist (the store's own error says so): no lock."""
    path = sqlite_path(uri)
    if path is None or not path.parent.is_dir():
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def sqlite_path(uri: str) -> Path | None:
    """The file of a SQLite store's URI (sqlite:///relative.db, sqlite:////absolute.db, with
    its %-escapes and ?query read as SQLAlchemy reads them); None for in-memory, any other
    scheme, or a URI SQLAlchemy cannot parse (the store's own error then says so)."""
    if not uri.startswith("sqlite:"):
        return None
    try:
        database = make_url(uri).database
    except ArgumentError:
        return None
    return None if database in (None, "", ":memory:") else Path(database)


def with_retries(call: Callable[[], T], attempts: int = 8) -> T:
    """SQLite allows one writer at a time; concurrent trials retry briefly on a locked db."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:  # MlflowException wraps sqlalchemy's OperationalError
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def search_all_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> list[Any]:
    """Every run matching `filter_string`, page by page (MLflow returns 1,000 at most a page)."""
    runs, token = [], None
    while True:
        page = with_retries(lambda t=token: client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=t))
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def run_name(method: str, assignment: Mapping[str, Any]) -> str:
    """What differs between the experiment's trials, short enough for MLflow's run column
    (it cuts a name at about 25 characters): `σ=2.1 λ=0.01 split=3`; the method leads only
    when it is swept (`maxent α=0.9 split=2`), and alone names a trial with nothing swept."""
    parts = [method] if "method" in assignment or not assignment else []
    for path, value in assignment.items():
        if path == "method":
            continue
        name = path.rsplit(".", 1)[-1]
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{PARAM_SYMBOLS.get(name, name)}={shown}")
    return " ".join(parts)


# Config fields that do not change a trial's results: left out of its configuration id.
NOT_IN_CONFIGURATION = ("name", "train.seed", "train.device", "dataset.root", "attacks.gallery", "attacks.bootstrap")


def configuration_id(config: Mapping[str, Any]) -> str:
    """What the replicates of one configuration share: the dumped trial config, less its seed
    and the fields that do not change results (`NOT_IN_CONFIGURATION`), hashed (12 hex
    digits). Any other difference (an attack budget changed with `--set`) is another
    configuration."""
    flat = {key: value for key, value in flatten(config).items() if key not in NOT_IN_CONFIGURATION}
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:12]


def to_metrics(values: Mapping[str, float], step: int) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in values.items()]


def finished_twin(tracking_uri: str, experiment_id: str, launch: str, config_id: str, seed: int) -> TrialRun | None:
    """A FINISHED run of the launch (before or after a resume) of the same configuration and
    seed: its results are what a new run of it would give (a seed fixes everything). Earlier
    launches do not count: the code may have changed since, and their numbers with it."""
    client = tracking_client(tracking_uri)
    query = (f"{tag_is(CONFIG_ID_TAG, config_id)} and params.`train.seed` = '{seed}' "
             f"and {tag_is(LAUNCH_TAG, launch)} and attributes.status = 'FINISHED'")
    found = with_retries(lambda: client.search_runs([experiment_id], query, max_results=1))
    return TrialRun(client, found[0].info.run_id, "FINISHED") if found else None


class StoreRun:
    """One MLflow run, through a retrying client: what a launch's parent run and a trial's
    child run share (logging in batches, artifacts, tags, metrics, ending)."""

    def __init__(self, client: MlflowClient, run_id: str, status: str = "RUNNING"):
        self.client = client
        self.run_id = run_id
        self.status = status  # as found; not kept up to date

    @classmethod
    def of(cls, tracking_uri: str, run_id: str):
        """An existing run of the store at `tracking_uri`."""
        return cls(tracking_client(tracking_uri), run_id)

    def log(self, metrics: Mapping[str, float] | None = None, step: int = 0, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None) -> None:
        param_list = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()]
        tag_list = [RunTag(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (tags or {}).items()]
        metric_list = to_metrics(metrics or {}, step)
        for start in range(0, max(len(metric_list), len(param_list), len(tag_list), 1), 100):
            with_retries(
                lambda s=start: self.client.log_batch(
                    self.run_id, metric_list[s : s + 100], param_list[s : s + 100], tag_list[s : s + 100]
                )
            )

    def log_artifacts(self, folder: Path) -> None:
        with_retries(lambda: self.client.log_artifacts(self.run_id, str(folder)))

    def tag(self, name: str) -> str | None:
        return with_retries(lambda: self.client.get_run(self.run_id)).data.tags.get(name)

    def metrics(self) -> dict[str, float]:
        """The latest value of every metric logged so far."""
        return dict(with_retries(lambda: self.client.get_run(self.run_id)).data.metrics)

    def reopen(self) -> None:
        """RUNNING again (a resumed launch's parent, a restarted trial's run)."""
        with_retries(lambda: self.client.update_run(self.run_id, status="RUNNING"))

    def finish(self, status: str = "FINISHED") -> None:
        with_retries(lambda: self.client.set_terminated(self.run_id, status))


class ParentRun(StoreRun):
    """A launch's parent run (role `sweep`): its trials' runs are its children."""

    @classmethod
    def start(cls, tracking_uri: str, experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any],
              spec: Mapping[str, Any]) -> ParentRun:
        """A new parent run with `tags` and `params`, the launch's spec as `spec.yaml`."""
        client = tracking_client(tracking_uri)
        created = with_retries(lambda: client.create_run(experiment_id, tags=dict(tags), run_name=name))
        run = cls(client, created.info.run_id)
        run.log(params=params)
        with_retries(lambda: client.log_dict(run.run_id, dict(spec), "spec.yaml"))
        return run

    def describe(self, markdown: str) -> None:
        """The run's description in the MLflow UI."""
        self.log(tags={NOTE_TAG: markdown})

    def end(self, status: str, metrics: Mapping[str, float]) -> None:
        self.log(metrics)
        self.finish(status)

    def kill_unfinished_children(self, experiment_id: str) -> int:
        """End the RUNNING child runs as KILLED (an interrupted launch stopped their trials;
        `--resume` reopens them). Returns how many there were."""
        query = f"tags.`mlflow.parentRunId` = '{self.run_id}' and attributes.status = 'RUNNING'"
        unfinished = search_all_runs(self.client, [experiment_id], query)
        for run in unfinished:
            StoreRun(self.client, run.info.run_id).finish("KILLED")
        return len(unfinished)


class TrialRun(StoreRun):
    """The MLflow child run of one trial; reused when a trial is restarted or resumed."""

    @classmethod
    def find(cls, tracking_uri: str, experiment_id: str, trial_id: str, launch: str, replicate: int = 0) -> TrialRun | None:
        """The run of (trial, launch, replicate) if there is one (see `open`)."""
        client = tracking_client(tracking_uri)
        query = f"{tag_is(TRIAL_ID_TAG, trial_id)} and {tag_is(LAUNCH_TAG, launch)}"
        found = with_retries(lambda: client.search_runs([experiment_id], query, max_results=100))
        existing = [r for r in found if r.data.tags.get(REPLICATE_TAG, "0") == str(replicate)]
        return cls(client, existing[0].info.run_id, existing[0].info.status) if existing else None

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        trial_id: str,
        launch: str,
        method: str,
        name: str,
        params: Mapping[str, Any],
        replicate: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> TrialRun:
        """The run of (trial, launch, replicate), created with `tags` if it does not exist. A
        run that finished stays FINISHED (`final_metrics` then returns its results); replicate
        0 is also a run from before replicates (no replicate tag), so such a launch resumes."""
        client = tracking_client(tracking_uri)
        existing = cls.find(tracking_uri, experiment_id, trial_id, launch, replicate)
        if existing is not None:
            if existing.status != "FINISHED":
                existing.reopen()
            return existing
        tags = {
            **(tags or {}),
            "mlflow.parentRunId": parent_run_id,
            ROLE_TAG: "trial",
            METHOD_TAG: method,
            LAUNCH_TAG: launch,
            TRIAL_ID_TAG: trial_id,
            REPLICATE_TAG: str(replicate),
        }
        created = with_retries(lambda: client.create_run(experiment_id, tags=tags, run_name=name))
        run = cls(client, created.info.run_id)
        run.log(params=params)
        return run

    def logged_steps(self, key: str) -> set[int]:
        return {m.step for m in with_retries(lambda: self.client.get_metric_history(self.run_id, key))}

    def final_metrics(self) -> dict[str, float] | None:
        """The final metrics if this run already finished (a trial restarted after its end)."""
        run = with_retries(lambda: self.client.get_run(self.run_id))
        if run.info.status != "FINISHED":
            return None
        return dict(run.data.metrics)

    def fail(self, error: BaseException) -> None:
        self.log(tags={ERROR_TAG: f"{type(error).__name__}: {error}"})
        self.finish("FAILED")
