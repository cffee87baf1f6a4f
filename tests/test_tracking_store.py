"""Opening a fresh SQLite store (MLflow's, Optuna's) from several processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest

from sweeps.search import study_storage
from trainables.tracking import tracking_client, with_retries

OPENERS = 3


def open_mlflow_store(uri: str, artifacts: str) -> None:
    name = f"by-{multiprocessing.current_process().name}"
    client = tracking_client(uri)
    with_retries(lambda: client.create_experiment(name, artifact_location=f"{artifacts}/{name}"))


def open_optuna_store(uri: str, artifacts: str) -> None:
    storage = study_storage(uri)
    optuna.create_study(storage=storage, study_name=f"by-{multiprocessing.current_process().name}")


def stored_names(store: str, uri: str) -> set[str]:
    if store == "mlflow":
        return {e.name for e in tracking_client(uri).search_experiments()}
    return {s.study_name for s in optuna.get_all_study_summaries(storage=uri)}


OPEN = {"mlflow": open_mlflow_store, "optuna": open_optuna_store}


def open_together(store: str, uri: str, artifacts: str, barrier, results) -> None:
    barrier.wait()  # every opener has imported MLflow and Optuna: only the open races
    try:
        OPEN[store](uri, artifacts)
        results.put("ok")
    except Exception as error:
        results.put(f"{type(error).__name__}: {str(error)[:200]}")


@pytest.mark.parametrize("store", sorted(OPEN))
def test_processes_opening_a_fresh_sqlite_store_at_once_all_succeed(store: str, tmp_path: Path):
    # With the lock taken out of trainables.tracking.sqlite_store_lock this fails: openers
    # crash in the store's table creation (sqlite3.OperationalError, IntegrityError). The
    # launcher and a user's second command, or two launches on a fresh home, do this.
    uri = f"sqlite:///{tmp_path / f'{store}.db'}"
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(OPENERS), spawn.Queue()
    openers = [spawn.Process(target=open_together, name=f"opener{i}",
                             args=(store, uri, (tmp_path / "artifacts").as_uri(), barrier, results))
               for i in range(OPENERS)]
    for opener in openers:
        opener.start()
    outcomes = [results.get(timeout=240) for _ in openers]
    for opener in openers:
        opener.join(timeout=60)
    assert outcomes == ["ok"] * OPENERS
    assert {f"by-opener{i}" for i in range(OPENERS)} <= stored_names(store, uri)
    assert (tmp_path / f"{store}.db.lock").exists()
