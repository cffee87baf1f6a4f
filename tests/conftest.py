"""Shared test set-up: private data/home folders, one torch thread, tiny trial configs.

- `$PRIVSWEEP_DATA` points at a per-session temp folder, so the Arrow cache never lands in
  the home folder; Fashion-MNIST stays loadable because its loader falls back to the Debian
  package folder (/usr/share/datasets/fashion-mnist).
- `$PRIVSWEEP_HOME` (MLflow store) points at another temp folder.
- torch runs one intra-op thread: the test machines are small and shared, and OpenMP
  spin-waiting on an oversubscribed CPU makes tiny models tens of times slower.
"""

from __future__ import annotations

import copy
import glob
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from trainables.config import TrialConfig, set_path

REPO = Path(__file__).resolve().parent.parent

TINY_RAW: dict[str, Any] = {
    "name": "tiny",
    "method": "noisy_arl",
    "dataset": {
        "name": "synthetic",
        "task": "shape",
        "private": "color",
        "options": {"train_size": 256, "test_size": 128, "image_size": 16},
    },
    "model": {"backbone": "small_cnn", "split": 2},
    # window_steps 0: the rule's window is `train.patience` epochs here, whatever the few batches an epoch
    "train": {"epochs": 1, "batch_size": 64, "lr": 1.0e-3, "seed": 0, "device": "cpu", "window_steps": 0},
    "params": {"sigma": 0.5, "lambda": 0.1},
    "attacks": {"leakage": ["server_arch", "mlp"], "reconstruction": ["mirror", "fc"], "epochs": 1, "batch_size": 128, "gallery": 4},
}


def tiny_raw(**overrides: Any) -> dict:
    """The tiny trial config as a raw mapping; keyword names are dotted paths with `__`
    for `.` (`train__epochs=2`), values replace the field."""
    raw = copy.deepcopy(TINY_RAW)
    for key, value in overrides.items():
        set_path(raw, key.replace("__", "."), value)
    return raw


def tiny_config(**overrides: Any) -> TrialConfig:
    """A validated `TrialConfig` of the tiny synthetic trial (see `tiny_raw`)."""
    return TrialConfig.model_validate(tiny_raw(**overrides))


@pytest.fixture(scope="session", autouse=True)
def private_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("privsweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRIVSWEEP_DATA", str(root / "data"))
        mp.setenv("PRIVSWEEP_HOME", str(root / "home"))
        yield root
    torch.set_num_threads(threads)


@pytest.fixture
def make_config():
    """Factory fixture: `make_config(method="none", params={}, train__epochs=2)`."""
    return tiny_config


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec mapping (default: the tiny trial) to a YAML file; returns its path."""
    counter = iter(range(1_000_000))

    def write(raw: dict | None = None, text: str | None = None, name: str | None = None) -> Path:
        path = tmp_path / (name or f"spec{next(counter)}.yaml")
        path.write_text(text if text is not None else yaml.safe_dump(raw if raw is not None else tiny_raw(), sort_keys=False))
        return path

    return write


def program_env(env: dict | None = None) -> dict:
    """The environment of a privsweep program the tests start: this one's, one torch thread,
    the repo importable, then `env`'s entries."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return full_env


def run_sweeps_cli(*args: str, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m sweeps ARGS` in a real subprocess from the repo root (one torch thread)."""
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args], cwd=REPO, env=program_env(env), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh privsweep home (stores, launches) and data cache for one test's commands."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("PRIVSWEEP_HOME", str(folder))
    monkeypatch.setenv("PRIVSWEEP_DATA", str(tmp_path / "data"))
    return folder


@pytest.fixture
def sweeps_cli():
    return run_sweeps_cli


@pytest.fixture
def s3_storage(monkeypatch) -> Iterator[str]:
    """`$PRIVSWEEP_STORAGE` on an S3 API served on loopback (moto's server, in this process:
    no object store can be reached here), for this test and the commands it starts; returns
    the storage URI. Its bucket is created by the first write."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    for key, value in {"AWS_ACCESS_KEY_ID": "privsweep-test", "AWS_SECRET_ACCESS_KEY": "privsweep-test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    uri = f"s3://privsweep/runs?endpoint_override={host}:{port}&scheme=http&region=us-east-1&allow_bucket_creation=true"
    monkeypatch.setenv("PRIVSWEEP_STORAGE", uri)
    yield uri
    server.stop()


def free_port() -> int:
    """A loopback port nothing listens on (the socket that found it is closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


POSTGRES_PASSWORD = "s3cret-study-pw"


def as_postgres_user(command: list[str]) -> list[str]:
    """Postgres refuses to run as root: as root, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """The URL of a fresh Postgres server (Debian's postgresql, a real server, not a mock) on a
    free loopback port: user privsweep with a password, database `postgres`."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("needs Debian's postgresql server binaries (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
    bin_dir = Path(initdb[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="privsweep-pg-"))  # outside pytest's 0700 root-owned tree
    (folder / "pw").write_text(POSTGRES_PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "privsweep", "--auth=scram-sha-256",
                                     f"--pwfile={folder / 'pw'}", "-E", "UTF8"]), check=True, capture_output=True)
    server = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w"]
    subprocess.run(as_postgres_user([*server, "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://privsweep:{POSTGRES_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres_user([*server, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(backend: str, artifacts: Path, *options: str, env: dict | None = None) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port, its store at `backend`, its artifacts
    in `artifacts` and served by it (as `cluster/mlflow` runs it); yields its URI once it
    answers, and stops it (its whole process group) after."""
    from sweeps.servers import answers

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", *options, "--backend-store-uri", backend,
         "--artifacts-destination", str(artifacts), "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not answers(f"{uri}/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up: {server.stderr.read()[-3000:] if server.poll() is not None else ''}")
            time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
