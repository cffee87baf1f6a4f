"""Opening the MLflow store from several processes at once (`trainables.tracking.tracking_client`)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from trainables.tracking import tracking_client, with_retries

OPENERS = 3


def open_together(uri: str, artifacts: str, barrier, results) -> None:
    barrier.wait()  # every opener has imported MLflow: only the open races
    try:
        client = tracking_client(uri)
        name = f"by-{multiprocessing.current_process().name}"
        with_retries(lambda: client.create_experiment(name, artifact_location=f"{artifacts}/{name}"))
        results.put("ok")
    except Exception as error:
        results.put(f"{type(error).__name__}: {str(error)[:200]}")


def test_processes_opening_a_fresh_sqlite_store_at_once_all_succeed(tmp_path: Path):
    # With the lock taken out of tracking_client this fails: openers crash in MLflow's table
    # creation (sqlite3.OperationalError). The launcher and a user's second command do this.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(OPENERS), spawn.Queue()
    openers = [spawn.Process(target=open_together, args=(uri, (tmp_path / 'artifacts').as_uri(), barrier, results), name=f"opener{i}") for i in range(OPENERS)]
    for opener in openers:
        opener.start()
    outcomes = [results.get(timeout=240) for _ in openers]
    for opener in openers:
        opener.join(timeout=60)
    assert outcomes == ["ok"] * OPENERS
    names = {e.name for e in tracking_client(uri).search_experiments()}
    assert {f"by-opener{i}" for i in range(OPENERS)} <= names
    assert (tmp_path / "mlflow.db.lock").exists()
