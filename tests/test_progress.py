"""The sweep's console progress: plain lines without a terminal, one per settled change of
state (no two lines that differ only in the running count); a tqdm bar on a terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from sweeps.progress import SETTLE_S, SweepProgress
from trainables.schema import FINAL_KEY

OBJECTIVES = [("utility/acc", "max"), ("privacy/leak_acc", "min")]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def trial(trial_id: str, acc: float = 0.9, leak: float = 0.5):
    return SimpleNamespace(trial_id=trial_id, error_file=None,
                           last_result={FINAL_KEY: True, "utility/acc": acc, "privacy/leak_acc": leak})


def test_without_a_terminal_a_finish_and_the_next_start_together_print_one_line():
    stream, clock = io.StringIO(), Clock()
    progress = SweepProgress(3, 2, OBJECTIVES, stream=stream, clock=clock)
    progress.on_trial_start(0, [], trial("a"))
    progress.on_trial_start(0, [], trial("b"))
    progress.on_step_end(0, [])
    assert stream.getvalue() == ""  # not settled yet
    clock.now += SETTLE_S
    progress.on_step_end(1, [])
    clock.now += 30
    progress.on_trial_complete(2, [], trial("a"))
    progress.on_step_end(2, [])
    clock.now += 0.2
    progress.on_trial_start(3, [], trial("c"))  # the freed slot is taken in the same moment
    clock.now += SETTLE_S
    progress.on_step_end(4, [])
    progress.on_step_end(5, [])  # nothing changed: nothing printed
    clock.now += 30
    progress.on_trial_complete(6, [], trial("b", 0.95, 0.6))
    progress.on_trial_complete(6, [], trial("c", 0.8, 0.7))  # dominated by a
    progress.on_experiment_end([])  # the last state is printed without waiting
    lines = stream.getvalue().splitlines()
    assert [line.split("] ", 1)[1].split(" · ")[0] for line in lines] == [
        "0/3 finished, 2 running, 0 failed",
        "1/3 finished, 2 running, 0 failed",
        "3/3 finished, 0 running, 0 failed",
    ]
    assert lines[-1].endswith("front 2 point(s)")


def test_on_a_terminal_it_is_one_bar_with_running_failed_and_front_beside_it():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = SweepProgress(2, 2, OBJECTIVES, stream=stream, clock=Clock())
    progress.on_trial_start(0, [], trial("a"))
    progress.on_trial_start(0, [], trial("b"))
    progress.on_trial_complete(1, [], trial("a"))
    progress.on_step_end(1, [])
    assert progress.bar.n == 1 and progress.bar.total == 2
    assert "1 running, 0 failed, front 1" in progress.bar.postfix
    progress.on_experiment_end([])
    assert "finished," not in stream.getvalue()  # the bar, no plain progress lines
