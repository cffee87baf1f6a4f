"""Live console progress of a sweep: trials done/running/failed, ETA, current front size.

On a terminal it is one tqdm bar (trials done of total, with running, failed and the front
size beside it, and tqdm's own ETA). Without one (`ray job logs`, CI, a log file) it prints
plain lines, one per change of state: events are gathered and printed once the state has
held for `SETTLE_S` (checked at the end of each Tune loop step), so a trial finishing and the
next one starting in the same moment give one line, not two that differ only in the running
count. The last state is always printed when the launch ends.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

import moocore
import numpy as np
from ray.tune import Callback
from tqdm.auto import tqdm

from trainables.schema import FINAL_KEY, SCREENED_KEY

SETTLE_S = 1.0


class SweepProgress(Callback):
    def __init__(self, total: int, concurrency: int, objectives: list[tuple[str, str]], stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.concurrency = concurrency
        self.objectives = objectives
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()
        self.running: set[str] = set()
        self.finished: dict[str, dict] = {}
        self.failed: set[str] = set()
        self.screened: set[str] = set()  # stopped after the screening attack (`search.screen`)
        self.changed_at: float | None = None  # when the state last changed without being shown
        self.shown: tuple[int, int, int, int] | None = None
        isatty = getattr(self.stream, "isatty", None)
        self.bar = tqdm(total=total, desc="trials", unit="trial", file=self.stream, dynamic_ncols=True) if isatty and isatty() else None

    def front_size(self) -> int:
        points = [[r.get(m, math.nan) for m, _ in self.objectives] for r in self.finished.values()]
        points = np.array([p for p in points if all(math.isfinite(v) for v in p)], dtype=float)
        if len(points) == 0:
            return 0
        maximise = [mode == "max" for _, mode in self.objectives]
        return int(moocore.is_nondominated(points, maximise=maximise).sum())

    def eta(self) -> str:
        done = self.done()
        if done == 0:
            return "?"
        per_trial = (self.clock() - self.start) / done
        seconds = per_trial * max(self.total - done, 0)
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"

    def done(self) -> int:
        return len(self.finished) + len(self.failed) + len(self.screened)

    def state(self) -> tuple[int, int, int, int]:
        return len(self.finished), len(self.running), len(self.failed), len(self.screened)

    def screened_note(self) -> str:
        return f", {len(self.screened)} screened out" if self.screened else ""

    def line(self) -> str:
        return (
            f"[{time.strftime('%H:%M:%S')}] {len(self.finished)}/{self.total} finished, "
            f"{len(self.running)} running, {len(self.failed)} failed{self.screened_note()} · ETA {self.eta()} · "
            f"front {self.front_size()} point(s)"
        )

    def _changed(self) -> None:
        if self.bar is not None:
            self.bar.n = self.done()
            self.bar.set_postfix_str(f"{len(self.running)} running, {len(self.failed)} failed{self.screened_note()}, "
                                     f"front {self.front_size()}")
            return
        self.changed_at = self.clock()

    def _flush(self, force: bool = False) -> None:
        if self.bar is not None or self.changed_at is None:
            return
        if not force and self.clock() - self.changed_at < SETTLE_S:
            return
        self.changed_at = None
        if self.state() != self.shown:
            self.shown = self.state()
            print(self.line(), file=self.stream, flush=True)

    def on_step_end(self, iteration, trials, **info):
        self._flush()

    def on_experiment_end(self, trials, **info):
        self._flush(force=True)
        if self.bar is not None:
            self.bar.close()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._changed()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        if trial.last_result.get(FINAL_KEY):
            self.finished[trial.trial_id] = trial.last_result
        elif trial.last_result.get(SCREENED_KEY):
            self.screened.add(trial.trial_id)
        self._changed()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed.add(trial.trial_id)
        message = f"trial {trial.trial_id} failed: {trial.error_file or 'see MLflow tag privsweep.error'}"
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)
        self._changed()
