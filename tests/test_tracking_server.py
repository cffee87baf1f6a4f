"""A sweep logging to a real `mlflow server` over HTTP, with MLflow's basic-auth app on and
the artifacts served by the server, as `cluster/mlflow` runs it (there on Postgres and MinIO;
here on SQLite and a folder, which the server hides from its clients the same way)."""

from __future__ import annotations

import os
import secrets
import shutil

import pytest
from conftest import mlflow_server
from mlflow.tracking import MlflowClient
from test_sweep_launch import sweeps, write_spec

ADMIN = "admin"


@pytest.fixture
def auth_server(tmp_path):
    """(URI, admin password) of a fresh basic-auth MLflow server on loopback."""
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{folder / 'auth.db'}\nadmin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    password = secrets.token_urlsafe(18)
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"), "MLFLOW_AUTH_ADMIN_PASSWORD": password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    with mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", "--app-name", "basic-auth", env=env) as uri:
        yield uri, password
    shutil.rmtree(folder, ignore_errors=True)


def test_a_sweep_without_credentials_is_refused_before_ray(auth_server, tmp_path, monkeypatch):
    uri, _ = auth_server
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("PRIVSWEEP_HOME", str(home))
    result = sweeps("run", str(write_spec(tmp_path, "remote", tracking={"uri": uri})))
    assert result.returncode == 2, result.stderr
    assert "HTTP 401" in result.stderr and "MLFLOW_TRACKING_USERNAME" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "ray_results").exists()


def test_a_sweep_logs_runs_and_artifacts_to_the_server(auth_server, tmp_path, monkeypatch):
    uri, password = auth_server
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("PRIVSWEEP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PRIVSWEEP_DATA", str(tmp_path / "data"))
    spec = write_spec(tmp_path, "remote", tracking={"uri": uri},
                      search={"sampler": "random", "num_samples": 2, "max_concurrent": 2, "seed": 0})
    result = sweeps("run", str(spec))
    assert result.returncode == 0, result.stderr[-4000:]
    client = MlflowClient(uri)  # reads the credentials from the environment, as the trials did
    trials = runs_at(client, "remote", "trial")
    assert len(trials) == 2 and {r.info.status for r in trials} == {"FINISHED"}
    for run in trials:
        assert {"reconstructions.png", "curves.png", "config.yaml"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    [parent] = runs_at(client, "remote", "sweep")
    assert parent.data.metrics["front/trials"] == 2
    assert "pareto.pdf" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing went to a local store instead


def runs_at(client: MlflowClient, experiment: str, role: str):
    found = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([found.experiment_id]) if r.data.tags.get("privsweep.role") == role]
