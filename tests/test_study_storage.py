"""A launch's Optuna study in a server database (`$PRIVSWEEP_STUDY_STORAGE`), as on a cluster
where it lives in the Postgres beside MLflow's: a real Postgres server (Debian's postgresql,
started here as its own user with password authentication on loopback), not a mock."""

from __future__ import annotations

import optuna
from conftest import POSTGRES_PASSWORD as PASSWORD
from conftest import free_port
from test_sweep_launch import launch_record, runs, sweeps, write_spec

from sweeps.launcher import fail_orphaned_trials
from sweeps.study_url import STUDY_STORAGE_ENV


def test_a_launch_keeps_its_study_in_the_server_database_and_never_shows_its_password(home, tmp_path, postgres, monkeypatch):
    monkeypatch.setenv(STUDY_STORAGE_ENV, postgres)
    result = sweeps("run", str(write_spec(tmp_path, "pgstudy")), "--num-samples", "2")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=launch_record(home, "pgstudy")["study"], storage=postgres)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.metric_names == ["utility/acc", "privacy/leak_acc"]
    assert not (home / "optuna.db").exists()  # nothing of the study on the driver's disk
    # the printed commands and the parent run's description name the storage, never its password
    [parent] = runs(home, "pgstudy", "sweep")
    assert PASSWORD not in result.stderr and PASSWORD not in parent.data.tags["mlflow.note.content"]
    assert f"{STUDY_STORAGE_ENV}=postgresql://privsweep:***@127.0.0.1:" in result.stderr


def test_a_study_database_that_refuses_the_launch_exits_2_before_any_run(home, tmp_path, postgres, monkeypatch):
    wrong = postgres.replace(PASSWORD, "not-the-password")
    monkeypatch.setenv(STUDY_STORAGE_ENV, wrong)
    result = sweeps("run", str(write_spec(tmp_path, "refused")), "--num-samples", "1")
    assert result.returncode == 2, result.stderr
    assert STUDY_STORAGE_ENV in result.stderr and "password authentication failed" in result.stderr
    assert "not-the-password" not in result.stderr and "Traceback" not in result.stderr
    assert runs(home, "refused", "sweep") == []  # no parent run, no trial: nothing to clean up


def test_a_trial_a_killed_driver_asked_and_never_told_is_failed_when_its_launch_finishes(tmp_path, monkeypatch, caplog):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    monkeypatch.setenv(STUDY_STORAGE_ENV, storage)
    study = optuna.create_study(study_name="sweep/launch", storage=storage, directions=["maximize"])
    study.tell(study.ask(), 0.5)
    orphan = study.ask()  # asked by a driver that was killed before it told the outcome
    fail_orphaned_trials("sweep/launch")
    states = [t.state for t in optuna.load_study(study_name="sweep/launch", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL] and orphan.number == 1
    fail_orphaned_trials("no/such-study")  # a launch that asked no searcher (`sweeps confirm`): nothing to do
    monkeypatch.setenv(STUDY_STORAGE_ENV, f"postgresql://privsweep:{PASSWORD}@127.0.0.1:{free_port()}/gone")
    with caplog.at_level("WARNING"):
        fail_orphaned_trials("sweep/launch")  # the database went away meanwhile: a warning, never a failed launch
    assert "orphaned trials were not failed" in caplog.text and PASSWORD not in caplog.text
