"""The spec reference (docs/spec-reference.md), generated from the pydantic models so it
cannot go stale: every field of the sweep spec and of every method's `params`, with its
type, default and description. `python -m sweeps reference > docs/spec-reference.md`
rewrites it; a test fails when the file differs from this output or a field has no
description."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sweeps.overrides import _model_in
from sweeps.spec import SweepSpec
from trainables.methods import METHODS

BOUNDS = ((Ge, "≥", "ge"), (Gt, ">", "gt"), (Le, "≤", "le"), (Lt, "<", "lt"))

HEADER = """# Spec reference

Generated from the pydantic models by `python -m sweeps reference`; do not edit by hand.
Every field of a sweep spec (`sweeps/*.yaml`), its type, default and meaning. A dotted
path is what `--set` takes (`--set attacks.whitebox.steps=400`). Unknown fields are an
error. `--smoke` shrinks a spec to seconds, see [design.md](design.md#the-smoke-run).
"""


def type_name(annotation: Any) -> str:
    """`int`, `float or null`, `one of cifar, imagenet`, `list of str`, a section's name."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def constraints(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for kind, symbol, attribute in BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attribute)}")
        if isinstance(item, MinLen):
            parts.append(f"at least {item.min_length}")
    return f" ({', '.join(parts)})" if parts else ""


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump() for v in value]
    return "null" if value is None else f"`{value}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def rows(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        yield prefix + (info.alias or name), info


def sections(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted path, model) for `model` and every section under it, depth first."""
    yield prefix, model
    for name, info in model.model_fields.items():
        sub = _model_in(info.annotation)
        if sub is not None:
            item = "[]" if typing.get_origin(info.annotation) is list else ""
            yield from sections(sub, f"{prefix}{info.alias or name}{item}.")


def table(fields: list[tuple[str, FieldInfo]]) -> list[str]:
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    for path, info in fields:
        lines.append(f"| `{path}` | {cell(type_name(info.annotation) + constraints(info))} | {cell(default_text(info))} | "
                     f"{cell(info.description or '')} |")
    return lines


def undescribed_fields() -> list[str]:
    """Dotted paths of spec and method-params fields without a description."""
    missing = [path for prefix, model in sections(SweepSpec) for path, info in rows(model, prefix) if not info.description]
    missing += [f"{name}: params.{path}" for name, method in sorted(METHODS.items())
                for path, info in rows(method.Params) if not info.description]
    return missing


def spec_reference() -> str:
    lines = [HEADER]
    for prefix, model in sections(SweepSpec):
        lines += [f"## `{prefix.rstrip('.')}`" if prefix else "## Top level", ""]
        lines += table(list(rows(model, prefix))) + [""]
    lines += ["## `params`, per method", "",
              "Each method validates its own `params`; a method with none takes `params: {}`.", ""]
    for name, method in sorted(METHODS.items()):
        fields = list(rows(method.Params, "params."))
        lines += [f"### `{name}`", ""]
        lines += (table(fields) if fields else ["No parameters."]) + [""]
    return "\n".join(lines).rstrip() + "\n"
