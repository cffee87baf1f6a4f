"""MLflow from the driver's side: the store, the experiment, the launch's parent run, the UI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager, suppress

from sweeps.spec import SweepSpec
from trainables.errors import InputError
from trainables.schema import (
    KIND_TAG,
    LAUNCH_TAG,
    METHOD_TAG,
    OBJECTIVES_TAG,
    PLANNED_RUNS_TAG,
    ROLE_TAG,
)
from trainables.tracking import (
    TrialRun,
    default_artifact_root,
    default_tracking_uri,
    flatten,
    search_all_runs,
    tracking_client,
    with_retries,
)

REMOTE_SCHEMES = ("http://", "https://", "databricks")
# MLflow 3 opens an experiment without this tag in its GenAI view (traces, evaluations);
# "custom_model_development" is its model-training view (runs, metrics, charts).
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI (markdown)
REACHABILITY_TIMEOUT_S = "5"


def tracking_uri(spec: SweepSpec) -> str:
    return spec.tracking.uri or default_tracking_uri()


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


def experiment_id(uri: str, name: str) -> str:
    """Get or create the sweep's experiment; a remote server that does not answer is an input error."""
    client = tracking_client(uri)
    try:
        with _quick_http():
            existing = with_retries(lambda: client.get_experiment_by_name(name))
    except Exception as error:
        if uri.startswith(REMOTE_SCHEMES):
            raise InputError(
                f"tracking.uri: the MLflow server at {uri} does not answer ({type(error).__name__}). "
                "Start it (see cluster/mlflow/README.md) or drop tracking.uri to use the local sqlite store."
            ) from None
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
            "add them to the runs table with Columns → Metrics. Every final metric has its 95 % interval beside it "
            "(`<key>:ci95_lo`, `<key>:ci95_hi`); docs/metrics.md says what each key means.")


def ui_url(port: int, experiment_id: str | None = None) -> str:
    """The MLflow UI page, in its model-training view (MLflow 3 opens its GenAI view unless
    told otherwise, and remembers a choice only per browser)."""
    page = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"http://127.0.0.1:{port}/#/{page}?workflowType=machine_learning"


def start_parent_run(uri: str, experiment: str, spec: SweepSpec, launch: str, kind: str, planned_runs: int) -> str:
    client = tracking_client(uri)
    tags = {
        ROLE_TAG: "sweep",
        KIND_TAG: kind,
        LAUNCH_TAG: launch,
        METHOD_TAG: spec.method,
        OBJECTIVES_TAG: json.dumps([o.model_dump() for o in spec.objectives]),
        PLANNED_RUNS_TAG: str(planned_runs),
    }
    tags[NOTE_TAG] = (f"{kind} launch of `{spec.name}` ({spec.method}): {planned_runs} planned run(s). "
                      "The front table appears here when the launch finishes.")
    if NOTE_TAG not in with_retries(lambda: client.get_experiment(experiment)).tags:
        with_retries(lambda: client.set_experiment_tag(experiment, NOTE_TAG, experiment_note(spec)))
    run = with_retries(lambda: client.create_run(experiment, tags=tags, run_name=f"{spec.name} {launch}"))
    TrialRun(client, run.info.run_id).log(params=flatten(spec.model_dump(mode="json", by_alias=True, exclude={"search_space"})))
    with_retries(lambda: client.log_dict(run.info.run_id, spec.model_dump(mode="json", by_alias=True), "spec.yaml"))
    return run.info.run_id


def reopen_parent_run(uri: str, run_id: str) -> None:
    with_retries(lambda: tracking_client(uri).update_run(run_id, status="RUNNING"))


def describe_parent_run(uri: str, run_id: str, markdown: str) -> None:
    """The parent run's description in the MLflow UI."""
    with_retries(lambda: tracking_client(uri).set_tag(run_id, NOTE_TAG, markdown))


def kill_unfinished_children(uri: str, experiment_id: str, parent_run_id: str) -> int:
    """End the parent's RUNNING child runs as KILLED (an interrupted launch stopped their
    trials); `--resume` reopens them. Returns how many there were."""
    client = tracking_client(uri)
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'"
    unfinished = search_all_runs(client, [experiment_id], query)
    for run in unfinished:
        TrialRun(client, run.info.run_id).finish("KILLED")
    return len(unfinished)


def end_parent_run(uri: str, run_id: str, status: str, metrics: dict[str, float]) -> None:
    run = TrialRun(tracking_client(uri), run_id)
    run.log(metrics)
    run.finish(status)


UI_PORT, UI_START_TIMEOUT_S, UI_STOP_TIMEOUT_S = 5000, 120, 30


def wait_for_stop(server: subprocess.Popen, stopping: list[float]) -> int:
    """The server's exit code; SIGKILL to its group when it outlives a stop by UI_STOP_TIMEOUT_S."""
    while True:
        try:
            return server.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > UI_STOP_TIMEOUT_S:
                with suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def open_ui(port: int) -> int:
    """The MLflow UI on the default store, bound to the loopback interface only, run like a
    server: its URL is printed once it answers, and Ctrl-C, SIGTERM or SIGHUP stop it and
    its workers (their own process group) before this returns, so the port is free again."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", default_tracking_uri(),
               "--default-artifact-root", default_artifact_root(), "--host", "127.0.0.1", "--port", str(port)]
    print(f"starting the MLflow UI on the store {default_tracking_uri()} ...", file=sys.stderr, flush=True)
    tracking_client(default_tracking_uri())  # tables made under the lock, not by the server racing a launch
    server = subprocess.Popen(command, start_new_session=True)
    stopping: list[float] = []  # when a stop signal came

    def forward(signum, frame) -> None:
        stopping.append(time.monotonic())
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        deadline = time.monotonic() + UI_START_TIMEOUT_S
        while server.poll() is None and not stopping and not answers(url):
            if time.monotonic() > deadline:
                print(f"the MLflow UI did not answer on {url} within {UI_START_TIMEOUT_S} s; stopping it", file=sys.stderr)
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
                return 1
            time.sleep(0.5)
        if server.poll() is None and not stopping:
            print(f"MLflow UI on {ui_url(port)} ; Ctrl-C stops it.", file=sys.stderr, flush=True)
        code = wait_for_stop(server, stopping)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        with suppress(ProcessLookupError):  # workers left behind by a server that exited on its own
            os.killpg(server.pid, signal.SIGTERM)
    return 0 if stopping else code
