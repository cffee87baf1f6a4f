"""A sweep over two real Ray nodes, as `cluster/` runs one: a head and a second node started
with `ray start` (loopback, token authentication on), the launch submitted with
`ray job submit`, its runs and artifacts in a real `mlflow server` whose backend is a real
Postgres (Debian's), its Optuna study in a database of that Postgres, its state in a folder
both nodes mount. The second node is killed mid-trial, as a lost machine would be: its trial
goes on on the head from the last epoch it finished there. A caller without the cluster's
token is refused by the job API."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import psycopg
import pytest
from conftest import free_port, mlflow_server
from mlflow.tracking import MlflowClient
from ray_nodes import BIN, node_folder, start_node, stop_node, submit_job, token_env
from test_sweep_launch import epochs_logged, write_spec

from trainables.schema import ROLE_TAG, STARTS_TAG, parse_starts

REPO = Path(__file__).resolve().parent.parent
SECOND_NODE_IP = "127.0.0.2"  # loopback too, a different address: the runs' tags tell the nodes apart
EPOCHS = 12


def database(postgres: str, name: str) -> str:
    """The URL of a new database `name` on the server of `postgres` (as `cluster/mlflow`'s
    `initdb/` makes one for the studies beside MLflow's)."""
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres.rpartition("/")[0] + f"/{name}"


@pytest.fixture
def tracking_server(postgres, tmp_path):
    """A real `mlflow server` on loopback: its store in Postgres, its artifacts served by it."""
    with mlflow_server(database(postgres, "mlflow"), tmp_path / "artifacts") as uri:
        yield uri


@pytest.fixture
def two_nodes():
    """(job API address, client environment, second node's folder) of a head and a second
    node, one CPU each, so the sweep's two trials run one on each."""
    head, second = node_folder(), node_folder()
    env = token_env()
    # a lost node is declared dead after 3 missed 1 s health checks (Ray's default: 5 of 3 s)
    env.update(RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")
    gcs, dashboard = free_port(), free_port()
    try:
        start_node(head, env, "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--dashboard-host=127.0.0.1",
                   f"--dashboard-port={dashboard}", "--include-dashboard=true", "--num-cpus=1")
        start_node(second, env, f"--address=127.0.0.1:{gcs}", f"--node-ip-address={SECOND_NODE_IP}", "--num-cpus=1")
        yield f"http://127.0.0.1:{dashboard}", env, second
    finally:
        for folder in (second, head):
            stop_node(folder)
            shutil.rmtree(folder, ignore_errors=True)


def test_a_sweep_over_two_nodes_survives_losing_one(two_nodes, tracking_server, postgres, tmp_path):
    address, env, second = two_nodes
    studies = database(postgres, "optuna")
    home, storage = tmp_path / "home", tmp_path / "shared"  # `storage`: the folder every node mounts
    spec = write_spec(tmp_path, "twonodes", tracking={"uri": tracking_server},
                      train={"epochs": EPOCHS, "patience": EPOCHS, "batch_size": 64},
                      search={"sampler": "random", "num_samples": 2, "max_concurrent": 2, "seed": 0, "max_failures": 2})
    runtime_env = {"env_vars": {"PRIVSWEEP_HOME": str(home), "PRIVSWEEP_DATA": str(tmp_path / "data"),
                                "PRIVSWEEP_STORAGE": str(storage), "PRIVSWEEP_STUDY_STORAGE": studies}}
    submitted = submit_job(address, env, REPO, "--no-wait", "--submission-id", "twonodes", "--working-dir", ".",
                           "--runtime-env-json", json.dumps(runtime_env), "--", "python", "-m", "sweeps", "run", str(spec))
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job = subprocess.Popen([str(BIN / "ray"), "job", "logs", "--follow", "--address", address, "twonodes"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = MlflowClient(tracking_server)
    deadline = time.monotonic() + 600
    killed = None
    while killed is None and time.monotonic() < deadline:  # the second node's trial, mid-training
        experiment = client.get_experiment_by_name("twonodes")
        trials = [] if experiment is None else [
            r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get(ROLE_TAG) == "trial"]
        for run in trials:
            if run.data.tags.get(STARTS_TAG) and parse_starts(run.data.tags[STARTS_TAG])[0].node_ip == SECOND_NODE_IP and 2 <= len(epochs_logged(client, run)) < EPOCHS - 2:
                stop_node(second)
                killed = run
        assert job.poll() is None, job.communicate()[0][-3000:]
        time.sleep(0.3)
    assert killed is not None, "the second node's trial was never seen mid-training"
    logged_before = len(epochs_logged(client, killed))
    logs = job.communicate(timeout=600)[0]
    status = subprocess.run([str(BIN / "ray"), "job", "status", "--address", address, "twonodes"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert "succeeded" in status.stdout, logs[-3000:]
    assert "2 of 2 planned trial(s) finished" in logs

    experiment = client.get_experiment_by_name("twonodes")
    found = client.search_runs([experiment.experiment_id])
    trials = [r for r in found if r.data.tags.get(ROLE_TAG) == "trial"]
    assert sorted(r.info.status for r in trials) == ["FINISHED", "FINISHED"]  # no trial run twice
    for run in trials:
        assert epochs_logged(client, run) == list(range(1, EPOCHS + 1)), run.data.tags[STARTS_TAG]  # no epoch twice
        assert {"client.pt", "metrics.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    starts = {r.info.run_id: parse_starts(r.data.tags[STARTS_TAG]) for r in trials}
    lost = starts[killed.info.run_id]
    # it began on the second node from scratch, and went on on the head from an epoch it had finished there
    assert len(lost) == 2 and lost[0].node_ip == SECOND_NODE_IP and lost[0].epoch == 0, lost
    assert lost[1].node_ip != SECOND_NODE_IP and lost[1].epoch >= logged_before >= 2, (lost, logged_before)
    [other] = [s for run_id, s in starts.items() if run_id != killed.info.run_id]
    assert len(other) == 1 and other[0].node_ip != SECOND_NODE_IP  # the head's own trial, never restarted
    [parent] = [r for r in found if r.data.tags.get(ROLE_TAG) == "sweep"]
    assert parent.info.status == "FINISHED" and "pareto.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    [name] = optuna.get_all_study_names(studies)  # the study in Postgres, nothing of it on the head's disk
    assert [t.state for t in optuna.load_study(study_name=name, storage=studies).trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert not (home / "optuna.db").exists() and not (home / "ray_results").exists()
    for wrong in ({"RAY_AUTH_TOKEN": secrets.token_hex(32)}, {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""}):
        refused = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env={**env, **wrong},
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "authentication token" in refused.stdout + refused.stderr, refused.stdout
    with pytest.raises(urllib.error.HTTPError) as plain:  # the job API over plain HTTP, no token
        urllib.request.urlopen(f"{address}/api/jobs/", timeout=30)
    assert plain.value.code == 401
    print(f"starts: {starts}; killed after {logged_before} logged epochs")
