"""The search-space grammar: each hyperparameter (a dotted spec path; a bare name means
`params.<name>`) maps to `{uniform: [lo, hi]}`, `{loguniform: [lo, hi]}`, `{int: [lo, hi]}`,
`{choice: [...]}` or a fixed value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainables.errors import InputError

SEARCH_SPACE_DIR = Path(__file__).resolve().parent.parent / "search_spaces"


@dataclass(frozen=True)
class Domain:
    kind: str  # uniform | loguniform | int | choice | fixed
    values: tuple[Any, ...]  # [lo, hi] for ranges: validating these validates every sample


def parse_domain(path: str, spec: Any) -> Domain:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("uniform", "loguniform", "int", "choice"):
        return Domain("fixed", (spec,))
    kind, values = next(iter(spec.items()))
    where = f"search_space.{path}"
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise InputError(f"{where}: `choice` needs a non-empty list, e.g. {{choice: [1, 2]}}.")
        return Domain(kind, tuple(values))
    if not (isinstance(values, list) and len(values) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)):
        raise InputError(f"{where}: `{kind}` needs [lo, hi] numbers, e.g. {{{kind}: [0.1, 2.0]}}; got {values!r}.")
    lo, hi = values
    if lo > hi:
        raise InputError(f"{where}: range [{lo}, {hi}] has lo > hi; write it as [{hi}, {lo}].")
    if kind == "loguniform" and lo <= 0:
        raise InputError(f"{where}: loguniform needs lo > 0, got {lo}; use `uniform` for ranges that include 0.")
    if kind == "int" and not all(isinstance(v, int) for v in values):
        raise InputError(f"{where}: `int` needs integer bounds, got {values}.")
    return Domain(kind, (lo, hi))


def normalise_path(key: str) -> str:
    return key if "." in key or key == "method" else f"params.{key}"


def load_search_space(reference: str | dict | None) -> dict[str, Domain]:
    """A search space from `search_spaces/<name>.yaml` or an inline mapping."""
    if reference is None:
        return {}
    if isinstance(reference, str):
        path = SEARCH_SPACE_DIR / f"{reference}.yaml"
        if not path.exists():
            available = sorted(p.stem for p in SEARCH_SPACE_DIR.glob("*.yaml"))
            raise InputError(f"search_space: no file {path}; use one of {available} or an inline mapping.")
        try:
            reference = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise InputError(f"{path}: not valid YAML ({error}).") from None
    if not isinstance(reference, dict):
        raise InputError("search_space: must be a file name or a mapping of hyperparameter -> domain.")
    return {normalise_path(str(key)): parse_domain(normalise_path(str(key)), value) for key, value in reference.items()}
