"""MLflow runs of a sweep -> one Arrow table, one row per trial.

Layout read (docs/design.md, written by the sweep launcher): one experiment per sweep; one parent
run per launch (`privsweep.role=sweep`, `privsweep.launch`, `privsweep.objectives`); one
child run per trial (`privsweep.role=trial`, `privsweep.method`, `privsweep.launch`,
`mlflow.parentRunId`), params = the flattened trial config, metrics = the final metrics.

Table columns: the run columns in `RUN_COLUMNS` (`config_id` and `replicate`: the seed
replicates of one configuration share a `config_id`; null for runs from before replicates;
`control`: the run's same-budget control as JSON, `analysis.controls`),
then every param under its dotted key
(`params.sigma`, `model.split`, ...; values parsed back to int/float/bool where the whole
column parses), then every final metric under its MLflow key (`utility/acc`, ...; float64,
null where a run lacks it). Per-epoch series (`train/*`, `val/*`) are left out. Metric keys
contain `/` and param keys never do; the plots and the report rely on that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.errors import AnalysisInputError
from analysis.objectives import Objective, parse_objectives
from trainables.schema import (
    CONFIG_ID_TAG,
    CONTROL_TAG,
    KIND_TAG,
    LAUNCH_TAG,
    METHOD_TAG,
    OBJECTIVES_TAG,
    PLANNED_RUNS_TAG,
    REPLICATE_TAG,
    ROLE_TAG,
    SCREENED_TAG,
    TABLE_EXPERIMENTS_KEY,
    TABLE_TRACKING_URI_KEY,
    TRAINING_OUTCOME_PREFIXES,
    tag_is,
)
from trainables.tracking import default_tracking_uri, search_all_runs, sqlite_path, tracking_client

RUN_COLUMNS = ("experiment", "run_id", "run_name", "parent_run_id", "launch", "method", "status", "start_time",
               "config_id", "replicate", "control")
REPLICATE_COLUMNS = ("seeds", "run_ids")  # added by analysis.replicates.group_replicates
FINISHED = ("FINISHED",)
FAILED = ("FAILED", "KILLED")
UNFINISHED = ("RUNNING", "SCHEDULED")
EPOCH_METRIC_PREFIXES = ("train/", "val/")  # curves, not columns; but a table keeps TRAINING_OUTCOME_PREFIXES
TRIAL_FILTER = tag_is(ROLE_TAG, "trial")
SWEEP_FILTER = tag_is(ROLE_TAG, "sweep")


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else `$MLFLOW_TRACKING_URI`, else the launcher's sqlite default."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _client(tracking_uri: str | None):
    uri = resolve_tracking_uri(tracking_uri)
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise AnalysisInputError(
            f"There is no MLflow store at {path} (tracking URI {uri}). Run a sweep first "
            "(python -m sweeps run SPEC.yaml), or point --tracking-uri / $MLFLOW_TRACKING_URI / "
            "$PRIVSWEEP_HOME at the store the sweep wrote."
        )
    return tracking_client(uri), uri


def _experiment(client: Any, name: str, uri: str) -> Any:
    experiment = client.get_experiment_by_name(name)
    if experiment is None and name.isdigit():
        try:
            experiment = client.get_experiment(name)
        except Exception:
            experiment = None
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise AnalysisInputError(
            f"No MLflow experiment named {name!r} in {uri}. The experiment name is the sweep spec's "
            f"`name` field. Experiments in this store: {shown or 'none'}. Pass the right --experiment, "
            "or --tracking-uri if the sweep logged to another store."
        )
    return experiment


def latest_experiment(tracking_uri: str | None = None) -> str:
    """The experiment of the most recently started launch (parent run) in the store."""
    client, uri = _client(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    latest = client.search_runs(ids, SWEEP_FILTER, max_results=1, order_by=["attributes.start_time DESC"]) if ids else []
    if not latest:
        raise AnalysisInputError(
            f"The store {uri} holds no sweep yet. Run one (python -m sweeps run sweeps/quickstart.yaml, or make demo), "
            "or point MLFLOW_TRACKING_URI (or PRIVSWEEP_HOME) at the store a sweep wrote."
        )
    return client.get_experiment(latest[0].info.experiment_id).name


def _filter(base: str, launch: str | None) -> str:
    if launch is None:
        return base
    return f"{base} and {tag_is(LAUNCH_TAG, launch)}"


def _parse_param(text: str | None) -> Any:
    return None if text is None or text == "None" else text


def _typed(values: list[str | None]) -> pa.Array:
    """A param column: bool, int64 or float64 when every present value parses, else string."""
    present = [v for v in values if v is not None]
    if present and all(v in ("True", "False", "true", "false") for v in present):
        return pa.array([None if v is None else v.lower() == "true" for v in values], pa.bool_())
    for kind, arrow_type in ((int, pa.int64()), (float, pa.float64())):
        try:
            parsed = [None if v is None else kind(v) for v in values]
        except ValueError:
            continue
        if present:
            return pa.array(parsed, arrow_type)
    return pa.array(values, pa.string())


def is_epoch_curve(key: str) -> bool:
    """A per-epoch training or validation curve (`train/task_loss`, `val/utility_acc`), not a
    final metric such as `train/converged`."""
    return key.startswith(EPOCH_METRIC_PREFIXES) and not key.startswith(TRAINING_OUTCOME_PREFIXES)


def _statuses(include_failed: bool, include_unfinished: bool) -> tuple[str, ...]:
    return FINISHED + (FAILED if include_failed else ()) + (UNFINISHED if include_unfinished else ())


def load_runs(
    experiment: str | Sequence[str],
    tracking_uri: str | None = None,
    *,
    launch: str | None = None,
    include_failed: bool = False,
    include_unfinished: bool = False,
    group: bool = False,
) -> pa.Table:
    """One row per trial of one sweep experiment, or of several combined (a list of names);
    with `group=True`, one row per configuration: its seed replicates' mean, with the
    interval of the mean and the number of seeds (`analysis.replicates.group_replicates`).

    Finished trials only by default; `include_failed=True` adds FAILED/KILLED ones and
    `include_unfinished=True` RUNNING/SCHEDULED ones. `launch` keeps one launch's trials
    (the parent run's `privsweep.launch`); default: every launch of the experiment(s).
    `tracking_uri`: default `$MLFLOW_TRACKING_URI`, else the launcher's sqlite store.
    Runs screened out by `search.screen` are never rows: they have no final metrics
    (`launch_progress` counts them). Raises `AnalysisInputError` for an unknown experiment or a missing sqlite store.
    The table's schema metadata records the tracking URI and the experiment names.
    """
    names = [experiment] if isinstance(experiment, str) else list(experiment)
    if not names:
        raise AnalysisInputError("No experiment given; pass the sweep's name (its MLflow experiment).")
    client, uri = _client(tracking_uri)
    statuses = _statuses(include_failed, include_unfinished)
    records: list[dict[str, Any]] = []
    for name in names:
        exp = _experiment(client, name, uri)
        for run in search_all_runs(client, [exp.experiment_id], _filter(TRIAL_FILTER, launch)):
            tags = run.data.tags
            if run.info.status not in statuses or tags.get(SCREENED_TAG) == "true":  # screened: no final metrics
                continue
            params = {key: _parse_param(value) for key, value in run.data.params.items()}
            metrics = {key: value for key, value in run.data.metrics.items() if not is_epoch_curve(key)}
            records.append({
                "run": {
                    "experiment": exp.name,
                    "run_id": run.info.run_id,
                    "run_name": run.info.run_name,
                    "parent_run_id": tags.get("mlflow.parentRunId"),
                    "launch": tags.get(LAUNCH_TAG),
                    "method": tags.get(METHOD_TAG) or params.get("method"),
                    "status": run.info.status,
                    "start_time": run.info.start_time,
                    "config_id": tags.get(CONFIG_ID_TAG),
                    "replicate": tags.get(REPLICATE_TAG),
                    "control": tags.get(CONTROL_TAG),
                },
                "params": params,
                "metrics": metrics,
            })
    records.sort(key=lambda r: (names.index(r["run"]["experiment"]), r["run"]["start_time"] or 0, r["run"]["run_id"]))
    table = _to_table(records, uri, names)
    if group:
        from analysis.replicates import group_replicates  # it builds on this module

        return group_replicates(table)
    return table


def _to_table(records: list[dict[str, Any]], uri: str, names: list[str]) -> pa.Table:
    param_keys = sorted({k for r in records for k in r["params"]})
    metric_keys = sorted({k for r in records for k in r["metrics"]})
    columns: dict[str, pa.Array] = {}
    for key in RUN_COLUMNS:
        values = [r["run"][key] for r in records]
        if key == "start_time":
            columns[key] = pa.array(
                [None if v is None else datetime.fromtimestamp(v / 1000, timezone.utc) for v in values],
                pa.timestamp("ms", tz="UTC"),
            )
        else:
            columns[key] = pa.array(values, pa.string())
    for key in param_keys:
        if key == "method":  # the same as the run column (from the `privsweep.method` tag)
            continue
        name = f"param:{key}" if key in RUN_COLUMNS else key
        columns[name] = _typed([r["params"].get(key) for r in records])
    for key in metric_keys:
        columns[key] = pa.array([r["metrics"].get(key) for r in records], pa.float64())
    table = pa.table(columns)
    return table.replace_schema_metadata({
        TABLE_TRACKING_URI_KEY: uri.encode(),
        TABLE_EXPERIMENTS_KEY: json.dumps(names).encode(),
    })


def concat_runs(tables: Iterable[pa.Table]) -> pa.Table:
    """Combine tables loaded separately (e.g. from different stores): columns are unioned."""
    tables = list(tables)
    if not tables:
        raise AnalysisInputError("No runs tables to combine.")
    combined = pa.concat_tables(tables, promote_options="permissive")
    experiments: list[str] = []
    for table in tables:
        experiments += [e for e in table_experiments(table) if e not in experiments]
    metadata = dict(combined.schema.metadata or {})
    metadata[TABLE_EXPERIMENTS_KEY] = json.dumps(experiments).encode()
    return combined.replace_schema_metadata(metadata)


def table_tracking_uri(table: pa.Table) -> str | None:
    """The tracking URI `load_runs` read the table from (kept in the schema metadata)."""
    value = (table.schema.metadata or {}).get(TABLE_TRACKING_URI_KEY)
    return value.decode() if value else None


def table_experiments(table: pa.Table) -> list[str]:
    value = (table.schema.metadata or {}).get(TABLE_EXPERIMENTS_KEY)
    if value:
        return json.loads(value)
    if "experiment" in table.column_names:
        return list(dict.fromkeys(v for v in table.column("experiment").to_pylist() if v))
    return []


def save_parquet(table: pa.Table, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_parquet(path: str | Path) -> pa.Table:
    return pq.read_table(path)


def sweep_runs(experiment: str, tracking_uri: str | None = None, launch: str | None = None) -> list[Any]:
    """The parent (sweep) runs of an experiment, newest first."""
    client, uri = _client(tracking_uri)
    exp = _experiment(client, experiment, uri)
    runs = search_all_runs(client, [exp.experiment_id], _filter(SWEEP_FILTER, launch))
    return sorted(runs, key=lambda r: r.info.start_time or 0, reverse=True)


def load_objectives(
    experiment: str, tracking_uri: str | None = None, launch: str | None = None
) -> tuple[Objective, ...] | None:
    """The objectives the sweep declared (`privsweep.objectives` of its newest parent run)."""
    for run in sweep_runs(experiment, tracking_uri, launch):
        tag = run.data.tags.get(OBJECTIVES_TAG)
        if tag:
            return parse_objectives(tag)
    return None


@dataclass(frozen=True)
class LaunchProgress:
    """One launch of a sweep: its parent run's status, the child runs it set out to finish
    (None for a launch from before the launcher recorded it) and how many did."""

    experiment: str
    launch: str
    kind: str
    status: str
    planned_runs: int | None
    finished_runs: int  # screened runs included: they finished their work
    screened_runs: int = 0  # stopped after the screening attack (`search.screen`), on no front

    @property
    def complete(self) -> bool:  # failed trials of a finished launch are failed, not still to run
        return self.status == "FINISHED"


def launch_progress(
    experiment: str | Sequence[str], tracking_uri: str | None = None, launch: str | None = None
) -> list[LaunchProgress]:
    """Every launch of the experiment(s), oldest first (`LaunchProgress`)."""
    client, uri = _client(tracking_uri)
    progress = []
    for name in [experiment] if isinstance(experiment, str) else list(experiment):
        exp = _experiment(client, name, uri)
        finished: dict[str, int] = {}
        screened: dict[str, int] = {}
        for run in search_all_runs(client, [exp.experiment_id], _filter(TRIAL_FILTER, launch) + " and attributes.status = 'FINISHED'"):
            key = run.data.tags.get(LAUNCH_TAG, "")
            finished[key] = finished.get(key, 0) + 1
            if run.data.tags.get(SCREENED_TAG) == "true":
                screened[key] = screened.get(key, 0) + 1
        parents = sorted(search_all_runs(client, [exp.experiment_id], _filter(SWEEP_FILTER, launch)),
                         key=lambda r: r.info.start_time or 0)
        for parent in parents:
            tags = parent.data.tags
            planned = tags.get(PLANNED_RUNS_TAG)
            progress.append(LaunchProgress(
                exp.name, tags.get(LAUNCH_TAG, ""), tags.get(KIND_TAG, "sweep"), parent.info.status,
                int(planned) if planned else None, finished.get(tags.get(LAUNCH_TAG, ""), 0),
                screened.get(tags.get(LAUNCH_TAG, ""), 0),
            ))
    return progress
