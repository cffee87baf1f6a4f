"""Benchmark trials kept as they finish, so a benchmark longer than one sitting resumes.

A benchmark cell (a method, its params, a seed and the spec overrides) is one trial with a
converged attack suite: minutes each on 2 CPU cores, and the methods table is about 80 of
them (6 h), more than one working session. Each finished trial's metrics are appended to a
JSON-lines file at once (a killed run loses at most the trial under way; a line cut short
by the kill is skipped), keyed by the trial's resolved configuration (the spec with its
overrides, as `TrialConfig`: override order, comments and the spec's search section, which
no trial reads, make no difference) and by a fingerprint of the code that produced it:
every `trainables/**/*.py` but the launcher-side modules of LAUNCHER_SIDE, which a trial's
numbers never pass through (MLflow logging, the Tune function, screening, artifacts, error
types). A trial of other code is never reused: after a change that could move a number the
benchmark starts again, and it says how many stored trials it left aside.
A trial that fails is reported with its overrides, the others still run and are stored, and
the run then raises the first failure; Ctrl-C kills the trials under way at once. Times
(`time/*`) are those of the sitting that ran the trial, so with other load on the machine
they are not comparable; every privacy and utility number is (same seed, same CPU results,
`tests/test_determinism.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from functools import partial
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
Outcome = tuple[list[str], dict[str, float] | None, Exception | None]
LAUNCHER_SIDE = frozenset({"tracking.py", "tune_trainable.py", "screening.py", "artifacts.py", "errors.py"})


def code_fingerprint(root: Path = REPO) -> str:
    """sha256 of the Python files under `trainables/` that a trial's numbers come from (all
    but LAUNCHER_SIDE at its top level), by relative path."""
    trainables = root / "trainables"
    modules = [p for p in trainables.rglob("*.py") if not (p.parent == trainables and p.name in LAUNCHER_SIDE)]
    digest = hashlib.sha256()
    for path in sorted(modules):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class StoredTrials:
    """The finished trials of one benchmark file for the current code: `get` and `put` by the
    trial's overrides of `spec`."""

    def __init__(self, path: Path, spec: Path, fingerprint: str):
        self.path, self.spec, self.fingerprint = path, spec, fingerprint
        self.trials: dict[str, dict[str, float]] = {}
        self.left_aside = 0  # stored trials of other code
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the tail of a run killed mid-write
                if record.get("code") == fingerprint:
                    self.trials[record["key"]] = record["metrics"]
                else:
                    self.left_aside += 1

    def key(self, overrides: list[str]) -> str:
        """sha256 of the trial's configuration as the spec loader resolves it."""
        from sweeps.spec import load_spec

        config = load_spec(self.spec, overrides).trial_config().model_dump_json()
        return hashlib.sha256(config.encode()).hexdigest()[:16]

    def get(self, overrides: list[str]) -> dict[str, float] | None:
        return self.trials.get(self.key(overrides))

    def put(self, overrides: list[str], metrics: dict[str, float]) -> None:
        key = self.key(overrides)
        self.trials[key] = metrics
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"key": key, "code": self.fingerprint, "overrides": overrides, "metrics": metrics}) + "\n"
        with self.path.open("a+b") as file:
            if file.tell() > 0:  # a line cut short by a kill must not swallow this one
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":
                    record = "\n" + record
            file.write(record.encode())
            file.flush()

    def describe(self) -> str:
        aside = f"; {self.left_aside} of other code left aside" if self.left_aside else ""
        return f"{self.path}: {len(self.trials)} stored trial(s) of this code ({self.fingerprint}){aside}"


def run_trial(spec: Path, overrides: list[str]) -> dict[str, float]:
    """One trial's final metrics."""
    from sweeps.spec import load_spec
    from trainables.trial import Trial

    metrics, _ = Trial(load_spec(spec, overrides).trial_config()).run()
    return metrics


def one_thread() -> None:
    """A pool worker's initialiser: one torch thread, as a sweep trial with cpu: 1."""
    import torch

    torch.set_num_threads(1)


def attempt(run: Callable[[Path, list[str]], dict[str, float]], spec: Path, job: list[str]) -> Outcome:
    """(job, its metrics, None) or (job, None, the error it raised)."""
    try:
        return job, run(spec, job), None
    except Exception as error:
        return job, None, error


def run_missing(
    store: StoredTrials, spec: Path, jobs: list[list[str]], workers: int,
    run: Callable[[Path, list[str]], dict[str, float]] | None = None,
) -> None:
    """Run the jobs (spec overrides) not stored yet, storing each as it finishes (a stop
    loses only the trials under way): one after the other in this process, or `workers` at a
    time in processes of their own with one torch thread each (on Ctrl-C they are killed, not
    waited for). `run` runs one trial (default `run_trial`). A failing trial is reported and
    the rest still run; the first failure is raised at the end."""
    run = run or run_trial
    missing = list({store.key(job): job for job in jobs if store.get(job) is None}.values())
    if not missing:
        return
    print(f"running {len(missing)} trial(s) not stored, {workers} at a time", file=sys.stderr, flush=True)
    failures: list[tuple[list[str], Exception]] = []
    with contextlib.ExitStack() as stack:
        if workers == 1:
            outcomes: Iterator[Outcome] = (attempt(run, spec, job) for job in missing)
        else:
            pool = stack.enter_context(get_context("spawn").Pool(workers, initializer=one_thread))  # exit: terminate
            outcomes = pool.imap_unordered(partial(attempt, run, spec), missing)
        for done, (job, metrics, error) in enumerate(outcomes, 1):
            if error is not None:
                failures.append((job, error))
                print(f"{done}/{len(missing)} FAILED ({type(error).__name__}: {error}): {' '.join(job)}", file=sys.stderr, flush=True)
                continue
            store.put(job, metrics)
            print(f"{done}/{len(missing)} stored: {' '.join(job)}", file=sys.stderr, flush=True)
    if failures:
        job, error = failures[0]
        raise RuntimeError(f"{len(failures)} of {len(missing)} trial(s) failed, the rest are stored; first: {' '.join(job)}") from error


def add_arguments(parser, name: str) -> None:
    parser.add_argument(
        "--results", type=Path, default=RESULTS / f"{name}.jsonl",
        help="JSON-lines file of finished trials: reused when the code is the same, appended as trials finish",
    )
    parser.add_argument("--stored-only", action="store_true", help="run nothing: print the table from the stored trials")
    parser.add_argument("--workers", type=int, default=1, help=f"trials at once, one core each (this machine: {os.cpu_count()} cores)")


def open_store(args, spec: Path) -> StoredTrials:
    store = StoredTrials(args.results, spec, code_fingerprint())
    print(store.describe(), file=sys.stderr, flush=True)
    return store
