"""Dataset registry: name -> loader(root, **options) -> Dataset, decoded once into an Arrow cache."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from types import ModuleType

from pydantic import TypeAdapter, ValidationError

from trainables.data import (
    celeba,
    cifar10,
    colored_fashion_mnist,
    fairface,
    fashion_mnist,
    mnist,
    synthetic,
)
from trainables.data.base import Dataset, Split
from trainables.data.cache import cached
from trainables.data.paths import cache_dir, data_root
from trainables.errors import InputError

# each module has `load(root, **options)` and the names of the attributes it labels, `ATTRIBUTES`
_MODULES: dict[str, ModuleType] = {
    "fashion_mnist": fashion_mnist,
    "colored_fashion_mnist": colored_fashion_mnist,
    "mnist": mnist,
    "synthetic": synthetic,
    "cifar10": cifar10,
    "celeba": celeba,
    "fairface": fairface,
}
DATASETS: dict[str, Callable[..., Dataset]] = {name: module.load for name, module in _MODULES.items()}


def declared_attributes(name: str) -> tuple[str, ...]:
    """The attributes dataset `name` labels, as its module declares them (no data read)."""
    return _MODULES[name].ATTRIBUTES


def check_attributes(name: str, task: str, private: str, attributes: Collection[str] | None = None) -> None:
    """The task and the private attribute are attributes of dataset `name`: of the ones its
    module declares, without reading data (`validate`), or of `attributes`, a loaded copy's."""
    known = sorted(declared_attributes(name) if attributes is None else attributes)
    for field_name, attribute in (("dataset.task", task), ("dataset.private", private)):
        if attribute not in known:
            raise InputError(f"{field_name}: dataset {name!r} has no attribute {attribute!r}; its attributes are {known}.")


def check_options(name: str, loader: Callable[..., Dataset], options: dict) -> dict:
    """The options, each checked against (and coerced to) the type the loader declares."""
    accepted = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(
            f"dataset.options: unknown option(s) {unknown} for dataset {name!r}; it accepts {accepted}."
        )
    hints = typing.get_type_hints(loader)
    checked = {}
    for key, value in options.items():
        try:
            checked[key] = TypeAdapter(hints.get(key, typing.Any)).validate_python(value)
        except ValidationError as error:
            raise InputError(
                f"dataset.options.{key}: {error.errors()[0]['msg']} (got {value!r}) for dataset {name!r}."
            ) from None
    return checked


def load_dataset(name: str, options: dict | None = None, root: str | Path | None = None) -> Dataset:
    """Decode (first time) or memory-map (afterwards) the dataset `name`."""
    if name not in DATASETS:
        raise InputError(f"dataset.name: unknown dataset {name!r}; choose one of {sorted(DATASETS)}.")
    loader = DATASETS[name]
    options = check_options(name, loader, dict(options or {}))
    folder = Path(root).expanduser() if root else data_root()
    if root and not folder.is_dir():
        raise InputError(f"dataset.root: folder {folder} does not exist; point it at the dataset's files.")
    return cached(name, {**options, "root": str(folder)}, cache_dir(), lambda: loader(folder, **options))


__all__ = ["DATASETS", "Dataset", "Split", "check_attributes", "declared_attributes", "load_dataset"]
