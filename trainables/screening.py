"""Safe attack-budget pruning (`search.screen`): a trial whose best case is already dominated
by the launch's front skips the full attack suite.

After defense training, a screened trial first runs the same attack suite at a fraction f of
its budget (each attacker's `Attack.screening_budget`: `attacks.epochs` and
`attacks.whitebox.steps` scaled by f, at least 1 each). A
weaker attacker's leakage and reconstruction scores bound the converged attacker's from
below (in expectation); the trial's best case is therefore, per objective, the end of its
screened 95 % interval that favours it: the high end of a maximised objective, the low end of
a minimised one (the value itself for a key without an interval, e.g. GFLOPs). When some
configuration of the front, i.e. a fully attacked FINISHED configuration of this launch
(its replicates' mean, as the searcher and the analysis see it), is at least as good on
every objective and better on one, the trial cannot reach the front: its run is FINISHED
with the `screened` tag and its screened metrics under `screen/<key>`, never as final
metrics, and the searcher is told PRUNED. Everything else runs the full suite, so no
screened value is ever a final value.

The screening attack runs with the global RNG saved and restored around it, so the full
attack that may follow gives exactly the numbers it gives with screening off.

Choices the idea leaves open, written down: only the first replicate of a configuration is
screened (a configuration dominated on seed 0 skips its other seeds), against the
configurations whose every seed has finished; the front is read from
the launch only (earlier launches may come from other code, as for finished twins); a
trial that started before the front point it would be dominated by had finished is not
screened (it saw a smaller front): screening never changes a result, it only spends or saves time.

Measured (`benchmarks/screening_sweep.py`, the quickstart at demo size, 8 trials, sampler
seed 0, f 0.2): nothing was screened out, since 6 of the 7 configurations were on the front,
and the screening attacks cost 22 % of wall time (712 s against 585 s). So it is off in every
shipped spec; a short sweep's front holds most of its trials.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch

from trainables.attacks.base import LearnedAttack
from trainables.attacks.registry import selected
from trainables.config import AttackConfig
from trainables.schema import (
    CONFIG_ID_TAG,
    INTERVAL_HIGH,
    INTERVAL_LOW,
    LAUNCH_TAG,
    ROLE_TAG,
    SCREEN_PREFIX,
    SCREENED_TAG,
    tag_is,
)
from trainables.tracking import search_all_runs, tracking_client

Objectives = Sequence[tuple[str, str]]  # (metric, "max" | "min")


def screening_budget(attacks: AttackConfig, fraction: float) -> AttackConfig:
    """The same attack suite, each selected attacker at `fraction` of its budget (its
    `Attack.screening_budget`: the learned attackers' epoch cap, the white-box steps)."""
    updates = LearnedAttack.screening_budget(attacks, fraction)  # the retrained utility model, always trained
    for attacker in selected(attacks).values():
        updates.update(attacker.screening_budget(attacks, fraction))
    return attacks.model_copy(update=updates)


def best_case(metrics: Mapping[str, float], objectives: Objectives) -> list[float]:
    """Each objective's screened value at the end of its interval that favours the trial."""
    return [metrics.get(metric + (INTERVAL_HIGH if mode == "max" else INTERVAL_LOW), metrics.get(metric, math.nan))
            for metric, mode in objectives]


def dominates(point: Sequence[float], other: Sequence[float], objectives: Objectives) -> bool:
    """`point` is at least as good as `other` on every objective and better on one."""
    better = [(p - o) if mode == "max" else (o - p) for p, o, (_, mode) in zip(point, other, objectives, strict=True)]
    return all(b >= 0 for b in better) and any(b > 0 for b in better)


def launch_front(tracking_uri: str, experiment_id: str, launch: str, objectives: Objectives, replicates: int = 1) -> list[list[float]]:
    """The objective points of the launch's fully attacked configurations: those with all
    `replicates` seeds finished (a mean of fewer may not survive the others), as their mean;
    runs without every objective finite, screened runs and failed ones left out."""
    client = tracking_client(tracking_uri)
    query = f"{tag_is(ROLE_TAG, 'trial')} and {tag_is(LAUNCH_TAG, launch)} and attributes.status = 'FINISHED'"
    by_configuration: dict[str, list[list[float]]] = {}
    for run in search_all_runs(client, [experiment_id], query):
        if run.data.tags.get(SCREENED_TAG) == "true":
            continue
        point = [run.data.metrics.get(metric, math.nan) for metric, _ in objectives]
        if all(math.isfinite(v) for v in point):
            by_configuration.setdefault(run.data.tags.get(CONFIG_ID_TAG, run.info.run_id), []).append(point)
    complete = [points for points in by_configuration.values() if len(points) >= replicates]
    return [[sum(column) / len(column) for column in zip(*points, strict=True)] for points in complete]


def is_dominated(metrics: Mapping[str, float], front: Sequence[Sequence[float]], objectives: Objectives) -> bool:
    point = best_case(metrics, objectives)
    return all(math.isfinite(v) for v in point) and any(dominates(other, point, objectives) for other in front)


def screened_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """What a screened run logs: each screened value under `screen/<key>`, never a final key."""
    return {SCREEN_PREFIX + key: value for key, value in metrics.items()}


def is_screened(metrics: Mapping[str, float]) -> bool:
    """A run's logged metrics are a screened run's (a finished twin or a resumed run)."""
    return any(key.startswith(SCREEN_PREFIX) for key in metrics)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Leave the global torch RNG (CPU and CUDA) as it was on entry."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
