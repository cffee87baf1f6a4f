"""Live console progress of a sweep: trials done/running/failed, ETA, current front size."""

from __future__ import annotations

import math
import sys
import time

import moocore
import numpy as np
from ray.tune import Callback

from trainables.tune_trainable import FINAL_KEY


class SweepProgress(Callback):
    def __init__(self, total: int, concurrency: int, objectives: list[tuple[str, str]]):
        self.total = total
        self.concurrency = concurrency
        self.objectives = objectives
        self.start = time.monotonic()
        self.running: set[str] = set()
        self.finished: dict[str, dict] = {}
        self.failed: set[str] = set()

    def front_size(self) -> int:
        points = [[r.get(m, math.nan) for m, _ in self.objectives] for r in self.finished.values()]
        points = np.array([p for p in points if all(math.isfinite(v) for v in p)], dtype=float)
        if len(points) == 0:
            return 0
        maximise = [mode == "max" for _, mode in self.objectives]
        return int(moocore.is_nondominated(points, maximise=maximise).sum())

    def eta(self) -> str:
        done = len(self.finished) + len(self.failed)
        if done == 0:
            return "?"
        per_trial = (time.monotonic() - self.start) / done
        seconds = per_trial * max(self.total - done, 0)
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"

    def line(self) -> str:
        return (
            f"[{time.strftime('%H:%M:%S')}] {len(self.finished)}/{self.total} finished, "
            f"{len(self.running)} running, {len(self.failed)} failed · ETA {self.eta()} · "
            f"front {self.front_size()} point(s)"
        )

    def _show(self) -> None:
        print(self.line(), file=sys.stderr, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._show()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        if trial.last_result.get(FINAL_KEY):
            self.finished[trial.trial_id] = trial.last_result
        self._show()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed.add(trial.trial_id)
        print(f"trial {trial.trial_id} failed: {trial.error_file or 'see MLflow tag privsweep.error'}", file=sys.stderr)
        self._show()
