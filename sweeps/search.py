"""Optuna through Ray Tune: samplers, the define-by-run space, honest trial outcomes.

- Samplers (`search.sampler`): gp (the default), tpe, nsga2, random, grid (exhaustive over
  `choice`/`int` domains); all Optuna's, seeded by `search.seed`.
- Why gp: on the tabular benchmark of the quickstart (`benchmarks/tabular/`, 72 trained and
  fully attacked configurations, 20 sampler seeds) it reached random search's 48-trial
  hypervolume in 15 trials (median; quartiles 12-21), TPE in 19, random in 54, NSGA-II in 56
  and NSGA-II from a Sobol first generation in 70. Optuna's GPSampler draws its first 10
  trials at random, and in a by_method space it models only the common domains (the method)
  and draws each method's own at random; it takes the running trials into account, so
  `max_concurrent` trials at once do not all land on one point.
- NSGA-II's population is min(50, max(4, num_samples // 3)) so small sweeps still evolve.
- The study lives in `optuna.db` beside the MLflow db, or in the database
  `$PRIVSWEEP_STUDY_STORAGE` names (on a cluster the Postgres beside MLflow's, so a lost head
  loses no study: cluster/README.md), named `<experiment>/<launch>`, so a resumed launch
  continues the same study. Optuna's heartbeats (`RDBStorage(heartbeat_interval=...)`) are not
  used: Optuna beats only inside `Study.optimize`, and Tune asks and tells trials one by one
  (`Study.ask` warns that heartbeats need `optimize`). A trial a killed driver asked and never
  told is failed by the launch that finishes the study (`sweeps.launcher.fail_orphaned_trials`),
  and Tune retries failed trials (`search.max_failures`).
- Only a trial's final report is told to Optuna as COMPLETE. A trial that errored is told
  FAIL; one that ended without its final report (stopped early, or screened out by
  `search.screen`: its screened values are never learned as final) PRUNED; a final report
  with a missing or non-finite objective FAIL: never COMPLETE with partial values.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy
from ray.tune.search.optuna import OptunaSearch

from sweeps.search_space import Domain, SearchSpace
from sweeps.spec import SweepSpec
from sweeps.study_url import STUDY_STORAGE_ENV, shown_url
from trainables.config import CONDITIONAL_SEPARATOR
from trainables.errors import InputError
from trainables.schema import FINAL_KEY, SCREENED_KEY
from trainables.tracking import sqlite_store_lock

log = logging.getLogger(__name__)


class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable again. Optuna 5.1 gave its genetic samplers a
    `threading.Lock` (`_thread_lock`), which cannot be pickled, and Ray Tune pickles the
    searcher with its sampler into the tuner's state at every launch ("cannot pickle
    '_thread.lock' object"; 5.0 has no lock). The lock serialises threads of one process, so
    a copy in another process gets a fresh one. Optuna names a genetic sampler's trial
    attributes (generation, parent cache) after its class (`BaseGASampler.__init_subclass__`),
    so the subclass keeps NSGA-II's names: a study begun by the plain sampler resumes with its
    generations."""

    @classmethod
    def _get_generation_key(cls) -> str:
        return optuna.samplers.NSGAIISampler._get_generation_key()

    @classmethod
    def _get_parent_cache_key_prefix(cls) -> str:
        return optuna.samplers.NSGAIISampler._get_parent_cache_key_prefix()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


def _nsga2(spec: SweepSpec, space: SearchSpace) -> optuna.samplers.BaseSampler:
    population = min(50, max(4, spec.search.num_samples // 3))
    return PicklableNSGAIISampler(population_size=population, seed=spec.search.seed)


def grid_values(space: SearchSpace) -> dict[str, list[Any]]:
    if space.by_method:
        raise InputError("search.sampler: grid cannot enumerate a by_method (conditional) search space; use gp, tpe, nsga2 or random.")
    grid = {}
    for _, path, domain in space.items():
        if domain.kind == "choice":
            grid[path] = list(domain.values)
        elif domain.kind == "int":
            grid[path] = list(range(domain.values[0], domain.values[1] + 1))
        elif domain.kind != "fixed":
            raise InputError(f"search_space.{path}: grid search needs `choice` or `int` domains, not `{domain.kind}`.")
    return grid


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its `study.stop()` once the grid is used up: that call
    raises outside `study.optimize` (Optuna >= 5), and Ray Tune drives the study by ask/tell.
    The launcher bounds the sweep by the grid size instead (`grid_size`)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def _gp(spec: SweepSpec, space: SearchSpace) -> optuna.samplers.BaseSampler:
    if space.by_method:  # said once here, where Optuna would say it for every parameter of every trial
        log.warning(
            "search.sampler gp: the GP models the common domains (%s) only; each method's own domains are drawn at random",
            ", ".join(space.common) or "none",
        )
    return optuna.samplers.GPSampler(seed=spec.search.seed, warn_independent_sampling=False)


def _grid(spec: SweepSpec, space: SearchSpace) -> optuna.samplers.BaseSampler:
    return AskTellGridSampler(grid_values(space), seed=spec.search.seed)


SAMPLERS: dict[str, Callable[[SweepSpec, SearchSpace], optuna.samplers.BaseSampler]] = {
    "nsga2": _nsga2,
    "tpe": lambda spec, space: optuna.samplers.TPESampler(seed=spec.search.seed),
    "random": lambda spec, space: optuna.samplers.RandomSampler(seed=spec.search.seed),
    "gp": _gp,
    "grid": _grid,
}


def grid_size(space: SearchSpace) -> int:
    return math.prod(len(values) for values in grid_values(space).values())


def suggest(trial: optuna.Trial, name: str, domain: Domain) -> Any:
    lo_hi = domain.values
    if domain.kind == "uniform":
        return trial.suggest_float(name, *lo_hi)
    if domain.kind == "loguniform":
        return trial.suggest_float(name, *lo_hi, log=True)
    if domain.kind == "int":
        return trial.suggest_int(name, *lo_hi)
    if domain.kind == "choice":
        return trial.suggest_categorical(name, list(domain.values))
    return domain.values[0]


class DefineByRun:
    """The Optuna space; conditional domains are named `<method>:<path>` in the study.
    A class, not a closure: Tune pickles the searcher into its experiment snapshots."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        assignment = {path: suggest(trial, path, domain) for path, domain in self.space.common.items()}
        method = assignment.get("method")
        for path, domain in self.space.by_method.get(method, {}).items():
            assignment[path] = suggest(trial, f"{method}{CONDITIONAL_SEPARATOR}{path}", domain)
        return assignment


class HonestOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna COMPLETE only for final reports with every objective,
    in a study that names its objectives (Optuna Dashboard labels its axes with them, not
    "0" and "1")."""

    def _setup_study(self, mode: str | list) -> None:
        super()._setup_study(mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names(list(self._metric))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        if self._already_told(ot_trial):
            self._completed_trials.add(trial_id)
            return
        values = None
        if error:
            state = optuna.trial.TrialState.FAIL
        elif not result or not result.get(FINAL_KEY) or result.get(SCREENED_KEY):
            state = optuna.trial.TrialState.PRUNED  # stopped early, or screened out (never a final value)
        else:
            values = [result.get(metric) for metric in self._metric]
            if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
                state = optuna.trial.TrialState.COMPLETE
            else:
                log.warning("trial %s ended without finite objectives %s: told FAIL", trial_id, dict(zip(self._metric, values, strict=True)))
                state, values = optuna.trial.TrialState.FAIL, None
        self._ot_study.tell(ot_trial, values, state=state)
        self._completed_trials.add(trial_id)

    def _already_told(self, ot_trial: optuna.Trial) -> bool:
        """Told before the driver died: the study is stored, the searcher snapshot may be older,
        so a resumed launch sees the trial end again (Optuna refuses a second tell)."""
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
        return any(t.number == ot_trial.number for t in self._ot_study.get_trials(deepcopy=False, states=finished))


def study_storage(storage_url: str) -> optuna.storages.RDBStorage:
    """The studies' store. SQLite: opened under a lock (two launches creating its tables at
    once crash one). A server database: each pooled connection is checked before use (a
    launch outlives a database restart). One that cannot be opened is an input error that
    names it, its password hidden."""
    engine_kwargs = None if storage_url.startswith("sqlite:") else {"pool_pre_ping": True}
    try:
        with sqlite_store_lock(storage_url):
            return optuna.storages.RDBStorage(storage_url, engine_kwargs=engine_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        named = f" ({STUDY_STORAGE_ENV})" if os.environ.get(STUDY_STORAGE_ENV) else ""
        raise InputError(
            f"the Optuna study storage {shown_url(storage_url)}{named} cannot be opened: {reason}. "
            f"Check the URL, that its database server runs and is reachable from here, its user and password, and "
            f"that its driver is installed (Postgres: psycopg); or unset {STUDY_STORAGE_ENV} to keep the study in "
            "optuna.db in the home folder."
        ) from None


def build_searcher(spec: SweepSpec, space: SearchSpace, storage_url: str, study_name: str) -> HonestOptunaSearch:
    storage = study_storage(storage_url)
    return HonestOptunaSearch(
        space=DefineByRun(space),
        metric=[o.metric for o in spec.objectives],
        mode=[o.mode for o in spec.objectives],
        sampler=SAMPLERS[spec.search.sampler](spec, space),
        study_name=study_name,
        storage=storage,
    )
