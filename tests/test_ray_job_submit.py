"""`ray job submit` against a real local head (loopback only, Ray's token authentication on,
as every cluster config runs it), stopping only that head."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_head(temp_dir: Path) -> None:
    """Kill the processes of this head only (they all carry its temp dir on their command line)."""
    mine = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(temp_dir) in part for part in process.info["cmdline"] or []):
            mine.append(process)
    for process in mine:
        process.kill()
    psutil.wait_procs(mine, timeout=30)


@pytest.fixture
def local_head():
    temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths are length-limited
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
             "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_the_smoke_quickstart(local_head, tmp_path):
    address, env = local_head
    home = tmp_path / "home"
    home.mkdir()
    runtime_env = {"env_vars": {"PRIVSWEEP_HOME": str(home), "PRIVSWEEP_DATA": str(tmp_path / "data")}}
    submit = [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
              "--runtime-env-json", json.dumps(runtime_env), "--",
              "python", "-m", "sweeps", "run", "sweeps/quickstart.yaml", "--smoke"]
    deadline = time.monotonic() + 180
    while True:  # the head's job agent comes up some seconds after `ray start` returns
        result = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        if "No available agent" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(3)
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
