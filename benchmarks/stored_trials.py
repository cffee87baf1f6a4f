"""Benchmark trials kept as they finish, so a benchmark longer than one sitting resumes.

A benchmark cell (a method, its params, a seed and the spec overrides) is one trial with a
converged attack suite: minutes each on 2 CPU cores, and the methods table is about 80 of
them (6 h), more than one working session. Each finished trial's metrics are appended to a
JSON-lines file at once (a killed run loses at most the trial under way; a line cut short
by the kill is skipped), keyed by the trial's resolved configuration (the spec with its
overrides, as `TrialConfig`: override order (a path given twice: its last value), comments
and the spec's search section, which no trial reads, make no difference) and by a
fingerprint of the code that produced it: every `trainables/**/*.py` but the launcher-side
modules of LAUNCHER_SIDE, which a trial's numbers never pass through (MLflow logging, the
Tune function, screening, artifacts, error types, the program entry, the launch storage). A
trial of other code is never reused: after a change that could move a number the benchmark
starts again, and it says how many stored trials it left aside.
A trial that fails is reported with its overrides, the others still run and are stored, and
the run then raises the first failure; Ctrl-C or SIGTERM kills the trials under way at once. Every
trial runs with one torch thread, in a worker or in this process (CPU results differ in the
last bits with the thread count), so `--workers` never changes a number. Times (`time/*`)
are those of the sitting that ran the trial, so with other load on the machine they are not
comparable; every privacy and utility number is (same seed, same CPU results,
`tests/test_determinism.py`).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from trainables.durable import append_durably

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
Outcome = tuple[list[str], dict[str, float] | None, str | None]
CURVES = "curves"  # in a run's result: the trial's per-epoch history, stored beside its metrics
LAUNCHER_SIDE = frozenset({
    "tracking.py", "tune_trainable.py", "screening.py", "artifacts.py", "errors.py", "durable.py", "program.py", "storage.py",
    "schema.py",  # names and tags only: a renamed key shows as a missing column, never as a moved number
})


def code_fingerprint(root: Path = REPO) -> str:
    """sha256 of the Python files under `trainables/` that a trial's numbers come from (all
    but LAUNCHER_SIDE at its top level), by relative path, each as its syntax tree without
    docstrings: a comment or docstring edit never sets stored trials aside."""
    trainables = root / "trainables"
    modules = [p for p in trainables.rglob("*.py") if not (p.parent == trainables and p.name in LAUNCHER_SIDE)]
    digest = hashlib.sha256()
    for path in sorted(modules):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + code_of(path.read_text()).encode() + b"\0")
    return digest.hexdigest()[:16]


def code_of(source: str) -> str:
    """The module's syntax tree, docstrings left out (comments never reach it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


class StoredTrials:
    """The finished trials of one benchmark file for the current code: `get` and `put` by the
    trial's overrides of `spec`."""

    def __init__(self, path: Path, spec: Path, fingerprint: str):
        self.path, self.spec, self.fingerprint = path, spec, fingerprint
        self.trials: dict[str, dict[str, float]] = {}
        self.curves: dict[str, list[dict[str, float]]] = {}  # key -> the trial's per-epoch train/* and val/* metrics
        self.left_aside = 0  # stored trials of other code
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the tail of a run killed mid-write
                if record.get("code") == fingerprint:
                    self.trials[record["key"]] = record["metrics"]
                    if "curves" in record:
                        self.curves[record["key"]] = record["curves"]
                else:
                    self.left_aside += 1

    def key(self, overrides: list[str]) -> str:
        """sha256 of the trial's configuration as the spec loader resolves it (overrides the
        loader rejects raise its InputError here, before anything runs). A params mapping is
        hashed as written: the same params in another order are another key, which costs a
        rerun, never a wrong reuse."""
        from sweeps.spec import load_spec

        config = load_spec(self.spec, overrides).trial_config().model_dump_json()
        return hashlib.sha256(config.encode()).hexdigest()[:16]

    def get(self, overrides: list[str]) -> dict[str, float] | None:
        return self.trials.get(self.key(overrides))

    def put(self, overrides: list[str], metrics: dict[str, float], key: str | None = None) -> None:
        """Store a finished trial (`key`: its key taken before it ran; default: now); its
        per-epoch curves, when `metrics` holds them under CURVES, beside its metrics."""
        key = key or self.key(overrides)
        metrics = dict(metrics)
        curves = metrics.pop(CURVES, None)
        self.trials[key] = metrics
        if curves is not None:
            self.curves[key] = curves
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stored = {"key": key, "code": self.fingerprint, "overrides": overrides, "metrics": metrics}
        if curves is not None:
            stored["curves"] = curves
        append_durably(self.path, json.dumps(stored))  # a line cut short by a kill does not swallow this one

    def describe(self) -> str:
        aside = f"; {self.left_aside} of other code left aside" if self.left_aside else ""
        return f"{self.path}: {len(self.trials)} stored trial(s) of this code ({self.fingerprint}){aside}"


def run_trial(spec: Path, overrides: list[str]) -> dict[str, float]:
    """One trial's final metrics, with its per-epoch defense curves under CURVES."""
    from sweeps.spec import load_spec
    from trainables.trial import Trial

    trial = Trial(load_spec(spec, overrides).trial_config())
    metrics, _ = trial.run()
    return {**metrics, CURVES: trial.history}


def one_thread() -> None:
    """A pool worker's initialiser: one torch thread, as a sweep trial with cpu: 1."""
    import torch

    torch.set_num_threads(1)


@contextlib.contextmanager
def one_thread_here() -> Iterator[None]:
    """One torch thread in this process while trials run in it, as in a pool worker (CPU
    results differ in the last bits with the thread count), then the count it had."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def attempt(run: Callable[[Path, list[str]], dict[str, float]], spec: Path, job: list[str]) -> Outcome:
    """(job, its metrics, None) or (job, None, the error and its traceback as text: a raised
    exception may not survive the trip back from a worker)."""
    try:
        return job, run(spec, job), None
    except Exception:
        return job, None, traceback.format_exc()


def outcomes_of(run, spec: Path, missing: list[list[str]], workers: int) -> Iterator[Outcome]:
    """Each job's outcome as it finishes: in this process, or `workers` at a time in processes
    of their own (a worker that dies breaks the pool with an error, never a hang; on Ctrl-C,
    SIGTERM or any error the workers are killed, not waited for: a trial is minutes, and a
    worker left running would train on for a result nobody stores)."""
    if workers == 1:
        with one_thread_here():
            for job in missing:
                yield attempt(run, spec, job)
        return
    pool = ProcessPoolExecutor(min(workers, len(missing)), mp_context=get_context("spawn"), initializer=one_thread)
    try:
        with sigterm_as_exit():
            futures = [pool.submit(attempt, run, spec, job) for job in missing]
            for future in as_completed(futures):
                yield future.result()
    except BaseException:
        for worker in multiprocessing.active_children():
            worker.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (`kill`, a job scheduler) raises SystemExit in this process, as Ctrl-C raises
    KeyboardInterrupt, so the caller's cleanup runs."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_missing(
    store: StoredTrials, spec: Path, jobs: list[list[str]], workers: int,
    run: Callable[[Path, list[str]], dict[str, float]] | None = None,
) -> None:
    """Run the jobs (spec overrides) not stored yet, storing each as it finishes (a stop
    loses only the trials under way), with one torch thread each, as a sweep trial with
    cpu: 1: one after the other in this process, or `workers` at a time in processes of their
    own. `run` runs one trial (default `run_trial`). A failing trial is reported and the rest
    still run; the failures are raised at the end. Every job's key is taken before any runs,
    so a spec edited meanwhile cannot relabel a finished trial."""
    run = run or run_trial
    keyed = {store.key(job): job for job in jobs}
    missing = {key: job for key, job in keyed.items() if key not in store.trials}
    if not missing:
        return
    key_of = {json.dumps(job): key for key, job in missing.items()}
    print(f"running {len(missing)} trial(s) not stored, {workers} at a time", file=sys.stderr, flush=True)
    failures: list[tuple[list[str], str]] = []
    for done, (job, metrics, error) in enumerate(outcomes_of(run, spec, list(missing.values()), workers), 1):
        if error is not None:
            failures.append((job, error))
            print(f"{done}/{len(missing)} FAILED: {' '.join(job)}\n{error}", file=sys.stderr, flush=True)
            continue
        store.put(job, metrics, key_of[json.dumps(job)])
        print(f"{done}/{len(missing)} stored: {' '.join(job)}", file=sys.stderr, flush=True)
    if failures:
        job, error = failures[0]
        raise RuntimeError(
            f"{len(failures)} of {len(missing)} trial(s) failed, the rest are stored; first: {' '.join(job)}\n{error}"
        )


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
