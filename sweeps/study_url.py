"""Where a launch's Optuna study lives, importable without Optuna or Ray: the launcher, the
CLI and the printed commands name it, and a URL's password never reaches a message, a note
or a printed command."""

from __future__ import annotations

import os

import sqlalchemy

from trainables.tracking import home

STUDY_STORAGE_ENV = "PRIVSWEEP_STUDY_STORAGE"


def study_storage_url() -> str:
    """`$PRIVSWEEP_STUDY_STORAGE` (an SQLAlchemy URL: on a cluster the Postgres database beside
    MLflow's), else `optuna.db` in the home folder, which is created if missing (a launch
    creates its folder there anyway; a remote MLflow store leaves it empty until then)."""
    if os.environ.get(STUDY_STORAGE_ENV):
        return os.environ[STUDY_STORAGE_ENV]
    folder = home()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def shown_url(url: str) -> str:
    """The URL as SQLAlchemy renders it with its password hidden (`***`); the URL itself when
    SQLAlchemy cannot parse it (it then has no password SQLAlchemy would use)."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url
