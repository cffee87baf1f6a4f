"""`python -m trainables.data NAME [...]`: fetch (if needed) and cache datasets ahead of a sweep."""

from __future__ import annotations

import sys

from trainables.data import DATASETS, load_dataset
from trainables.errors import InputError


def main(names: list[str]) -> int:
    if not names:
        print(f"usage: python -m trainables.data NAME [...]; names: {sorted(DATASETS)}", file=sys.stderr)
        return 2
    try:
        for name in names:
            dataset = load_dataset(name)
            print(f"{name}: train {len(dataset.train)}, test {len(dataset.test)}, images {dataset.image_shape}, attributes {dataset.num_classes}")
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


raise SystemExit(main(sys.argv[1:]))
