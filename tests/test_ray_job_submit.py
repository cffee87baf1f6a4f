"""`ray job submit` against a real local head (loopback only, Ray's token authentication on,
as every cluster config runs it), stopping only that head."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port
from mlflow.tracking import MlflowClient
from ray_nodes import BIN, node_folder, start_node, stop_node, submit_job, token_env

REPO = Path(__file__).resolve().parent.parent

@pytest.fixture
def local_head():
    folder = node_folder()
    dashboard = free_port()
    env = token_env()
    start_node(folder, env, "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={dashboard}", "--include-dashboard=true", "--num-cpus=2")
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_node(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_ray_job_submit_runs_the_smoke_quickstart(local_head, tmp_path):
    address, env = local_head
    home = tmp_path / "home"
    home.mkdir()
    runtime_env = {"env_vars": {"PRIVSWEEP_HOME": str(home), "PRIVSWEEP_DATA": str(tmp_path / "data")}}
    result = submit_job(address, env, REPO, "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env), "--",
                        "python", "-m", "sweeps", "run", "sweeps/quickstart.yaml", "--smoke")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout.lower()
    for wrong in ({"RAY_AUTH_TOKEN": secrets.token_hex(32)}, {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""}):
        refused = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], cwd=REPO,
                                 env={**env, **wrong}, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "authentication token" in refused.stdout + refused.stderr, refused.stdout
    with pytest.raises(urllib.error.HTTPError) as plain:  # the job API over plain HTTP, no token
        urllib.request.urlopen(f"{address}/api/jobs/", timeout=30)
    assert plain.value.code == 401
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart_noisy_arl/smoke")  # --smoke keeps to its own experiment
    found = client.search_runs([experiment.experiment_id])
    trials = [r for r in found if r.data.tags.get("privsweep.role") == "trial"]
    assert [r.info.status for r in trials] == ["FINISHED", "FINISHED"]
    assert all("utility/acc" in r.data.metrics for r in trials)
