"""MLflow from the driver's side: the store, the experiment, the launch's parent run, the UI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager

from mlflow.tracking import MlflowClient

from sweeps.spec import SweepSpec
from trainables.errors import InputError
from trainables.tracking import (
    TrialRun,
    default_artifact_root,
    default_tracking_uri,
    flatten,
    with_retries,
)

REMOTE_SCHEMES = ("http://", "https://", "databricks")
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
    client = MlflowClient(uri)
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
        return existing.experiment_id
    artifact_location = None if uri.startswith(REMOTE_SCHEMES) else default_artifact_root()
    return with_retries(lambda: client.create_experiment(name, artifact_location=artifact_location))


def start_parent_run(uri: str, experiment: str, spec: SweepSpec, launch: str, kind: str = "sweep") -> str:
    client = MlflowClient(uri)
    tags = {
        "privsweep.role": "sweep",
        "privsweep.kind": kind,
        "privsweep.launch": launch,
        "privsweep.method": spec.method,
        "privsweep.objectives": json.dumps([o.model_dump() for o in spec.objectives]),
    }
    run = with_retries(lambda: client.create_run(experiment, tags=tags, run_name=f"{spec.name} {launch}"))
    TrialRun(client, run.info.run_id).log(params=flatten(spec.model_dump(mode="json", by_alias=True, exclude={"search_space"})))
    with_retries(lambda: client.log_dict(run.info.run_id, spec.model_dump(mode="json", by_alias=True), "spec.yaml"))
    return run.info.run_id


def reopen_parent_run(uri: str, run_id: str) -> None:
    with_retries(lambda: MlflowClient(uri).update_run(run_id, status="RUNNING"))


def end_parent_run(uri: str, run_id: str, status: str, metrics: dict[str, float]) -> None:
    run = TrialRun(MlflowClient(uri), run_id)
    run.log(metrics)
    run.finish(status)


def open_ui(port: int) -> int:
    """The MLflow UI on the default store, bound to the loopback interface only."""
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", default_tracking_uri(),
               "--default-artifact-root", default_artifact_root(), "--host", "127.0.0.1", "--port", str(port)]
    print(f"MLflow UI on http://127.0.0.1:{port} (store {default_tracking_uri()}); Ctrl-C stops it.", file=sys.stderr)
    return subprocess.call(command)
