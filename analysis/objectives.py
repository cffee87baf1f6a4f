"""Objectives: which metric, maximised or minimised; parsing of every spelling we accept."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from analysis.errors import AnalysisInputError

MODES = ("max", "min")


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise AnalysisInputError(
                f"Objective {self.metric!r} has mode {self.mode!r}; the mode must be 'max' or 'min' "
                f"(write it as '{self.metric}:max' or '{self.metric}:min')."
            )
        if not self.metric:
            raise AnalysisInputError("An objective has an empty metric name; write it as 'METRIC:max' or 'METRIC:min'.")

    @property
    def maximise(self) -> bool:
        return self.mode == "max"

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"


ObjectiveLike = Objective | str | Mapping[str, Any] | tuple
ObjectivesLike = str | Iterable[ObjectiveLike] | None

#: Used when neither the caller nor the sweep's parent run (`privsweep.objectives`) says otherwise.
DEFAULT_OBJECTIVES: tuple[Objective, ...] = (
    Objective("utility/acc", "max"),
    Objective("privacy/leak_acc", "min"),
)


def _one(item: ObjectiveLike) -> Objective:
    if isinstance(item, Objective):
        return item
    if isinstance(item, str):
        metric, sep, mode = item.strip().rpartition(":")
        if not sep:
            raise AnalysisInputError(
                f"Objective {item!r} has no mode; write it as '{item}:max' or '{item}:min' "
                "(e.g. --objectives utility/acc:max privacy/leak_acc:min)."
            )
        return Objective(metric.strip(), mode.strip().lower())
    if isinstance(item, Mapping):
        if "metric" not in item:
            raise AnalysisInputError(f"Objective {dict(item)!r} has no 'metric' key; expected {{'metric': ..., 'mode': 'max'|'min'}}.")
        return Objective(str(item["metric"]), str(item.get("mode", "max")).lower())
    if isinstance(item, tuple) and len(item) == 2:
        return Objective(str(item[0]), str(item[1]).lower())
    if hasattr(item, "metric") and hasattr(item, "mode"):  # e.g. the sweep spec's pydantic Objective
        return Objective(str(item.metric), str(item.mode).lower())
    raise AnalysisInputError(f"Cannot read objective {item!r}; expected 'METRIC:max', 'METRIC:min' or {{'metric': ..., 'mode': ...}}.")


def parse_objectives(spec: ObjectivesLike) -> tuple[Objective, ...]:
    """Objectives from any accepted spelling; `None` gives `DEFAULT_OBJECTIVES`.

    Accepted: `Objective`s, `"utility/acc:max"` strings, `{"metric": ..., "mode": ...}` dicts,
    `(metric, mode)` tuples, objects with `.metric` and `.mode`, a space-separated string `"utility/acc:max privacy/leak_acc:min"`,
    or the JSON list stored in the parent run's `privsweep.objectives` tag.
    """
    if spec is None:
        return DEFAULT_OBJECTIVES
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("["):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as error:
                raise AnalysisInputError(f"Objectives {text!r} are not valid JSON: {error}.") from None
        else:
            spec = text.split()
    objectives = tuple(_one(item) for item in spec)  # type: ignore[union-attr]
    if not objectives:
        raise AnalysisInputError("No objectives given; name at least one, e.g. 'utility/acc:max privacy/leak_acc:min'.")
    metrics = [o.metric for o in objectives]
    if len(set(metrics)) != len(metrics):
        raise AnalysisInputError(f"An objective metric appears twice in {[str(o) for o in objectives]}; name each metric once.")
    return objectives
