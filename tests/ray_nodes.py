"""Real Ray nodes for the tests, started with `ray start` as a cluster's nodes are: loopback
only, Ray's token authentication on, each node's files under its own temporary folder, so a
test can stop one node (and only it) by killing the processes that name that folder."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent


def token_env() -> dict[str, str]:
    """This environment with a fresh Ray token (every node and client of a cluster gets it)."""
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def node_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="rn", dir="/tmp"))  # short: Ray's socket paths are length-limited


def start_node(folder: Path, env: dict[str, str], *options: str) -> None:
    """`ray start` with its files under `folder` (a head with `--head`, else `--address`)."""
    command = [str(BIN / "ray"), "start", f"--temp-dir={folder}", "--disable-usage-stats", *options]
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr


def stop_node(folder: Path) -> None:
    """Kill this node's processes only (they all carry its folder on their command line), as a
    lost machine would: no `ray stop`, nothing told."""
    mine = [p for p in psutil.process_iter(["cmdline"]) if any(str(folder) in part for part in p.info["cmdline"] or [])]
    for process in mine:
        process.kill()
    psutil.wait_procs(mine, timeout=30)


def submit_job(address: str, env: dict[str, str], cwd: Path, *arguments: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`ray job submit ARGUMENTS` to the head's job API, once its job agent is up (some seconds
    after `ray start` returns; minutes on a loaded machine)."""
    deadline = time.monotonic() + 300
    while True:
        result = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", address, *arguments], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=timeout)
        if "No available agent" not in result.stderr or time.monotonic() > deadline:
            return result
        time.sleep(3)
