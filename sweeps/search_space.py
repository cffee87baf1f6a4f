"""The search-space grammar: each hyperparameter (a dotted spec path; a bare name means
`params.<name>`) maps to `{uniform: [lo, hi]}`, `{loguniform: [lo, hi]}`, `{int: [lo, hi]}`,
`{choice: [...]}` or a fixed value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import search_spaces
from sweeps.text_files import read_utf8
from trainables.errors import InputError, did_you_mean

SEARCH_SPACE_DIR = Path(search_spaces.__file__).resolve().parent


@dataclass(frozen=True)
class Domain:
    kind: str  # uniform | loguniform | int | choice | fixed
    values: tuple[Any, ...]  # [lo, hi] for ranges: validating these validates every sample


DOMAIN_KINDS = ("uniform", "loguniform", "int", "choice")


def parse_domain(path: str, spec: Any) -> Domain:
    if isinstance(spec, dict) and len(spec) == 1 and (kind := str(next(iter(spec)))) not in DOMAIN_KINDS:
        hint = did_you_mean(kind, DOMAIN_KINDS)
        if hint:  # a misspelled kind would otherwise pass as a fixed value, a mapping
            raise InputError(f"search_space.{path}: unknown domain kind `{kind}`{hint}; the kinds are {list(DOMAIN_KINDS)}.")
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DOMAIN_KINDS:
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


@dataclass(frozen=True)
class SearchSpace:
    """Domains sampled for every trial, plus domains sampled only when `method` takes a value."""

    common: dict[str, Domain]
    by_method: dict[str, dict[str, Domain]]

    def __len__(self) -> int:
        return len(self.common) + sum(len(d) for d in self.by_method.values())

    def items(self):
        """(method or None, path, domain) for every domain."""
        for path, domain in self.common.items():
            yield None, path, domain
        for method, domains in self.by_method.items():
            for path, domain in domains.items():
                yield method, path, domain


def _read_space_file(reference: str) -> dict:
    path = SEARCH_SPACE_DIR / f"{reference}.yaml"
    available = sorted(p.stem for p in SEARCH_SPACE_DIR.glob("*.yaml"))
    if path.resolve().parent != SEARCH_SPACE_DIR.resolve():
        raise InputError(f"search_space: {reference!r} names a file outside {SEARCH_SPACE_DIR}; use one of {available} or an inline mapping.")
    if not path.exists():
        raise InputError(f"search_space: no file {path}; use one of {available} or an inline mapping.")
    try:
        return yaml.safe_load(read_utf8(path)) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error}).") from None


def _domains(reference: str | dict) -> dict[str, Domain]:
    mapping = _read_space_file(reference) if isinstance(reference, str) else reference
    if not isinstance(mapping, dict):
        raise InputError("search_space: must be a file name or a mapping of hyperparameter -> domain.")
    return {normalise_path(str(key)): parse_domain(normalise_path(str(key)), value) for key, value in mapping.items()}


def load_search_space(reference: str | dict | None) -> SearchSpace:
    """A search space from `search_spaces/<name>.yaml` or an inline mapping.

    An inline mapping may hold `by_method: {method: <file name or mapping>}`: those domains
    are sampled only in trials whose `method` (itself a `choice`) takes that value.
    """
    if reference is None:
        return SearchSpace({}, {})
    if isinstance(reference, dict) and "by_method" in reference:
        reference = dict(reference)
        by_method = reference.pop("by_method") or {}
        if not isinstance(by_method, dict):
            raise InputError("search_space.by_method: must map method names to search spaces.")
        common = _domains(reference)
        if "method" not in common or common["method"].kind != "choice":
            raise InputError("search_space.by_method needs `method: {choice: [...]}` in the same search space.")
        unknown = sorted(set(by_method) - set(common["method"].values))
        if unknown:
            raise InputError(f"search_space.by_method: {unknown} are not among the method choices {list(common['method'].values)}.")
        return SearchSpace(common, {m: _domains(space) for m, space in by_method.items()})
    return SearchSpace(_domains(reference), {})
