"""Dataset registry: name -> loader(root, **options) -> Dataset, decoded once into an Arrow cache."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path

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

DATASETS: dict[str, Callable[..., Dataset]] = {
    "fashion_mnist": fashion_mnist.load,
    "colored_fashion_mnist": colored_fashion_mnist.load,
    "mnist": mnist.load,
    "synthetic": synthetic.load,
    "cifar10": cifar10.load,
    "celeba": celeba.load,
    "fairface": fairface.load,
}


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


__all__ = ["DATASETS", "Dataset", "Split", "load_dataset"]
