"""The local web pages on a sweep: `python -m sweeps ui` (MLflow) and `python -m sweeps
dashboard` (Optuna Dashboard), each bound to 127.0.0.1 only and run like a server: its URL
is printed once it answers, and Ctrl-C, SIGTERM or SIGHUP stop it and its workers (their
own process group) before the command returns, so the port is free again.

`where_to_look` is what the launcher prints at the end of a launch: every command names the
store it reads, so it opens the same store from a new shell.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress

from sweeps.study_url import STUDY_STORAGE_ENV, shown_url
from trainables.errors import InputError

UI_PORT, DASHBOARD_PORT = 5000, 8080
OBJECTIVES_VIEW = "privsweep-objectives"  # the key of the saved runs-table view sweeps.tracking writes
START_TIMEOUT_S, STOP_TIMEOUT_S = 120, 30


def ui_url(port: int, experiment_id: str | None = None) -> str:
    """The MLflow UI page, in its model-training view (MLflow 3 opens its GenAI view unless
    told otherwise, and remembers a choice only per browser); an experiment's runs open in
    the launcher's saved view of the objectives (`sweeps.tracking.objectives_view`)."""
    if experiment_id is None:
        return f"http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning"
    return (f"http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs?viewStateShareKey={OBJECTIVES_VIEW}"
            "&workflowType=machine_learning")


def where_to_look(tracking_uri: str, experiment: str, experiment_id: str, study_storage: str) -> str:
    """The commands that open this launch's store: the MLflow UI, the notebook, the Optuna
    Dashboard and the front report of the whole experiment."""
    uri, name = shlex.quote(tracking_uri), shlex.quote(experiment)
    return "\n".join([
        "Where to look:",
        f"  MLflow UI:  python -m sweeps ui --tracking-uri {uri}",
        f"              then {ui_url(UI_PORT, experiment_id)}",
        f"  notebook:   PRIVSWEEP_EXPERIMENT={name} MLFLOW_TRACKING_URI={uri} make notebook",
        f"  dashboard:  {dashboard_command(study_storage)}",
        f"  front:      python -m analysis pareto --experiment {name} --tracking-uri {uri}",
    ])


def dashboard_command(study_storage: str) -> str:
    """The command that opens the study storage in Optuna Dashboard: SQLite by its URL; a
    server database through $PRIVSWEEP_STUDY_STORAGE, which holds its password."""
    if study_storage.startswith("sqlite:"):
        return f"python -m sweeps dashboard --storage {shlex.quote(study_storage)}"
    return f"python -m sweeps dashboard    # {STUDY_STORAGE_ENV}={shown_url(study_storage)}"


def _wait_for_stop(server: subprocess.Popen, stopping: list[float]) -> int:
    """The server's exit code; SIGKILL to its group when it outlives a stop by STOP_TIMEOUT_S."""
    while True:
        try:
            return server.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > STOP_TIMEOUT_S:
                with suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)


def answers(url: str) -> bool:
    """Whether a GET of `url` succeeds within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def serve(name: str, command: list[str], probe_url: str, shown_url: str) -> int:
    """Run `command` (a server on `probe_url`) until a stop signal; 0 when stopped by one."""
    server = subprocess.Popen(command, start_new_session=True)
    stopping: list[float] = []  # when a stop signal came

    def forward(signum, frame) -> None:
        stopping.append(time.monotonic())
        with suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while server.poll() is None and not stopping and not answers(probe_url):
            if time.monotonic() > deadline:
                print(f"the {name} did not answer on {probe_url} within {START_TIMEOUT_S} s; stopping it", file=sys.stderr)
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
                return 1
            time.sleep(0.5)
        if server.poll() is None and not stopping:
            print(f"{name} on {shown_url} ; Ctrl-C stops it.", file=sys.stderr, flush=True)
        code = _wait_for_stop(server, stopping)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        with suppress(ProcessLookupError):  # workers left behind by a server that exited on its own
            os.killpg(server.pid, signal.SIGTERM)
    return 0 if stopping else code


def open_ui(port: int, tracking_uri: str | None = None) -> int:
    """The MLflow UI on `tracking_uri` (default: the launcher's local store, made if new); a
    SQLite store named explicitly must exist (a typo would otherwise open a new, empty one)."""
    from trainables.tracking import (
        default_artifact_root,
        default_tracking_uri,
        sqlite_path,
        tracking_client,
    )

    uri = tracking_uri or default_tracking_uri()
    path = sqlite_path(uri)
    if tracking_uri is not None and path is not None and not path.exists():  # the default store is made on first use
        raise InputError(f"--tracking-uri: there is no MLflow store at {path}; run a sweep first, or name the "
                         "store a sweep wrote (the launcher prints it at the end of a launch).")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
    if tracking_uri is None:
        command += ["--default-artifact-root", default_artifact_root()]
    print(f"starting the MLflow UI on the store {uri} ...", file=sys.stderr, flush=True)
    tracking_client(uri)  # tables made under the lock, not by the server racing a launch
    return serve("MLflow UI", command, f"http://127.0.0.1:{port}", ui_url(port))


def open_dashboard(port: int, storage: str) -> int:
    """Optuna Dashboard on a launch's study storage (`sqlite:///<home>/optuna.db` locally):
    each launch's study, its Pareto front and hypervolume history, interactively."""
    from trainables.tracking import sqlite_path

    path = sqlite_path(storage)
    if path is not None and not path.exists():
        raise InputError(f"--storage: there is no Optuna study database at {path}; run a sweep first, or name the "
                         "storage a sweep wrote (the launcher prints it at the end of a launch).")
    # optuna_dashboard's public entry point (the package has no `python -m` one)
    start = "import sys, optuna_dashboard; optuna_dashboard.run_server(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))"
    command = [sys.executable, "-c", start, storage, str(port)]
    url = f"http://127.0.0.1:{port}/dashboard"
    print(f"starting Optuna Dashboard on {storage} ...", file=sys.stderr, flush=True)
    return serve("Optuna Dashboard", command, url, url)
