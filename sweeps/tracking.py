"""MLflow from the driver's side: the store a spec names, its experiment (description, saved
view), and what a launch's parent run is tagged with; the runs themselves are
`trainables.tracking`'s (`ParentRun`, `TrialRun`)."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager

from sweeps.servers import OBJECTIVES_VIEW
from sweeps.spec import SweepSpec
from trainables.errors import InputError
from trainables.schema import (
    INTERVAL_HIGH,
    INTERVAL_LOW,
    KIND_TAG,
    LAUNCH_TAG,
    METHOD_TAG,
    NOTE_TAG,
    OBJECTIVES_TAG,
    PARETO_TAG,
    PLANNED_RUNS_TAG,
    ROLE_TAG,
)
from trainables.tracking import (
    ParentRun,
    default_artifact_root,
    default_tracking_uri,
    flatten,
    sqlite_path,
    tracking_client,
    with_retries,
)

REMOTE_SCHEMES = ("http://", "https://", "databricks")
# MLflow 3 opens an experiment without this tag in its GenAI view (traces, evaluations);
# "custom_model_development" is its model-training view (runs, metrics, charts).
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# MLflow 3's saved views of an experiment's runs table: an experiment tag holding the view,
# opened by `?viewStateShareKey=<key>` on the runs page (sweeps.servers.ui_url). Checked in
# MLflow 3.17's UI (headless chromium): the view's columns and order apply, and sorting by a
# metric lists the trials flat, so every trial's objectives show without a click.
SAVED_VIEW_PREFIX = "mlflow.sharedViewState."
REACHABILITY_TIMEOUT_S = "5"


def tracking_uri(spec: SweepSpec) -> str:
    """The spec's store; a SQLite `tracking.uri` whose folder does not exist is an input error
    (MLflow would create the folders and an empty store there, hiding a mistyped path)."""
    if spec.tracking.uri is None:
        return default_tracking_uri()
    path = sqlite_path(spec.tracking.uri)
    if path is not None and not path.parent.is_dir():
        raise InputError(
            f"tracking.uri: the folder {path.parent} of the SQLite store does not exist; fix the path, or create "
            f"the folder (mkdir -p {path.parent}) to start a new store there."
        )
    return spec.tracking.uri


@contextmanager
def _quick_http():
    """Fail fast (no retries, short timeout) while probing a remote server."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": REACHABILITY_TIMEOUT_S})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def remote_store_error(uri: str, error: Exception) -> str:
    """Why a remote tracking server could not be used, and what to do about it."""
    status = getattr(error, "get_http_status_code", lambda: None)()
    if status in (401, 403):
        who = os.environ.get("MLFLOW_TRACKING_USERNAME")
        given = f"the credentials of user {who!r} (MLFLOW_TRACKING_USERNAME)" if who else "a request without credentials"
        return (f"tracking.uri: the MLflow server at {uri} refused {given} (HTTP {status}). It runs with "
                "authentication: export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (on a Ray cluster, "
                "in the job's runtime env; cluster/mlflow/README.md) and run again.")
    return (f"tracking.uri: the MLflow server at {uri} does not answer ({type(error).__name__}). "
            "Start it (see cluster/mlflow/README.md) or drop tracking.uri to use the local sqlite store.")


def experiment_id(uri: str, name: str) -> str:
    """Get or create the sweep's experiment; a remote server that does not answer is an input error."""
    client = tracking_client(uri)
    try:
        with _quick_http():
            existing = with_retries(lambda: client.get_experiment_by_name(name))
    except Exception as error:
        if uri.startswith(REMOTE_SCHEMES):
            raise InputError(remote_store_error(uri, error)) from None
        raise
    if existing is not None:
        if EXPERIMENT_KIND_TAG not in existing.tags:  # created before the kind was set
            with_retries(lambda: client.set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING))
        return existing.experiment_id
    artifact_location = None if uri.startswith(REMOTE_SCHEMES) else default_artifact_root()
    return with_retries(lambda: client.create_experiment(
        name, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING}
    ))


def experiment_note(spec: SweepSpec) -> str:
    """The experiment's description in the MLflow UI: how its runs are laid out."""
    objectives = ", ".join(f"`{o.metric}` ({o.mode})" for o in spec.objectives)
    return (f"privsweep sweep `{spec.name}`. One parent run per launch, whose description holds the launch's "
            f"Pareto front; under it one child run per trial, named by its swept values. Objectives: {objectives}: "
            "the saved view \"privsweep: objectives\" (Views, top right) shows them for every trial, sorted, with their "
            "intervals and the front tag. Every final metric has its 95 % interval beside it "
            "(`<key>:ci95_lo`, `<key>:ci95_hi`); docs/metrics.md says what each key means.")


def objectives_view(spec: SweepSpec) -> str:
    """The saved view `OBJECTIVES_VIEW`: each objective with its interval ends, and the front
    tag, as columns; sorted by the last objective (the privacy one in every shipped spec),
    most private first. MLflow's envelope: name, times in ms, the state as a JSON string."""
    columns = [f"metrics.`{o.metric}{end}`" for o in spec.objectives for end in ("", INTERVAL_LOW, INTERVAL_HIGH)]
    last = spec.objectives[-1]
    state = {"selectedColumns": [*columns, f"tags.`{PARETO_TAG}`"], "orderByKey": f"metrics.`{last.metric}`",
             "orderByAsc": last.mode == "min"}
    now = int(time.time() * 1000)
    return json.dumps({"name": "privsweep: objectives", "createdAt": now, "updatedAt": now, "state": json.dumps(state)})


def start_parent_run(uri: str, experiment: str, spec: SweepSpec, launch: str, kind: str, planned_runs: int) -> ParentRun:
    """The launch's parent run, tagged with what the analysis reads of it; the experiment's
    description and saved objectives view set on the way."""
    client = tracking_client(uri)
    tags = {
        ROLE_TAG: "sweep",
        KIND_TAG: kind,
        LAUNCH_TAG: launch,
        METHOD_TAG: spec.method,
        OBJECTIVES_TAG: json.dumps([o.model_dump() for o in spec.objectives]),
        PLANNED_RUNS_TAG: str(planned_runs),
        NOTE_TAG: (f"{kind} launch of `{spec.name}` ({spec.method}): {planned_runs} planned run(s). "
                   "The front table appears here when the launch finishes."),
    }
    if NOTE_TAG not in with_retries(lambda: client.get_experiment(experiment)).tags:
        with_retries(lambda: client.set_experiment_tag(experiment, NOTE_TAG, experiment_note(spec)))
    with_retries(lambda: client.set_experiment_tag(experiment, SAVED_VIEW_PREFIX + OBJECTIVES_VIEW, objectives_view(spec)))
    params = flatten(spec.model_dump(mode="json", by_alias=True, exclude={"search_space"}))
    return ParentRun.start(uri, experiment, f"{spec.name} {launch}", tags, params, spec.model_dump(mode="json", by_alias=True))
