"""Dotted-path overrides (`--set train.epochs=3`) on the raw spec, checked against the schema."""

from __future__ import annotations

import copy
import typing
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import BaseModel

from trainables.config import set_path
from trainables.errors import InputError, did_you_mean


def _model_in(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *typing.get_args(annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def model_at(schema: type[BaseModel], location: Sequence[str | int]) -> type[BaseModel] | None:
    """The section model at `location` (field names; list indices are skipped), or None
    inside a free-form mapping (params, dataset.options)."""
    model: type[BaseModel] | None = schema
    for part in location:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def check_path(schema: type[BaseModel], path: str) -> None:
    """Raise InputError unless `path` names a field of `schema` (free-form dicts accept any key)."""
    model: type[BaseModel] | None = schema
    walked = []
    for part in path.split("."):
        if model is None:
            return  # inside a free-form mapping (params, dataset.options)
        if part not in model.model_fields:
            where = ".".join(walked) or "the spec"
            raise InputError(f"{path}: no such field{did_you_mean(part, model.model_fields)}; "
                             f"{where} has fields {sorted(model.model_fields)}.")
        walked.append(part)
        model = _model_in(model.model_fields[part].annotation)


def parse_assignment(text: str) -> tuple[str, Any]:
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise InputError(f"--set {text!r}: expected PATH=VALUE, e.g. --set train.epochs=3.")
    try:
        return path.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise InputError(f"--set {text!r}: the value is not valid YAML ({error}).") from None


def apply_overrides(raw: dict, assignments: list[str], schema: type[BaseModel]) -> dict:
    result = copy.deepcopy(raw)
    for text in assignments:
        path, value = parse_assignment(text)
        check_path(schema, path)
        set_path(result, path, value)
    return result
