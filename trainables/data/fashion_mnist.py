"""Fashion-MNIST: `class` (10) and `coarse` (0 = apparel, 1 = footwear and bags).

Files are looked for, in order, in the Debian package folder
(`apt-get install dataset-fashion-mnist`), a torchvision-layout root
(`<root>/FashionMNIST/raw`), and otherwise downloaded with torchvision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.data.base import Dataset
from trainables.data.idx import has_idx_files, idx_split, load_idx_splits
from trainables.data.torchvision_download import download_idx
from trainables.errors import InputError

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
# Sandal, Sneaker, Bag, Ankle boot; everything else is worn on the body.
FOOTWEAR_AND_BAGS = (5, 7, 8, 9)
ATTRIBUTES = ("class", "coarse")


def coarse_labels(classes: np.ndarray) -> np.ndarray:
    return np.isin(classes, FOOTWEAR_AND_BAGS).astype(np.int64)


def find_fashion_mnist(root: Path, download: bool = True) -> Path:
    for folder in (root / "FashionMNIST" / "raw", root, DEBIAN_FOLDER):
        if has_idx_files(folder):
            return folder
    if download:
        folder = download_idx("FashionMNIST", root)
        if folder is not None:
            return folder
    raise InputError(
        f"Fashion-MNIST files not found in {root / 'FashionMNIST' / 'raw'} or {DEBIAN_FOLDER}, "
        "and the download failed. Install them with `apt-get install dataset-fashion-mnist`, "
        "or put the four *-ubyte(.gz) files in <PRIVSWEEP_DATA>/FashionMNIST/raw "
        "(set `dataset.root` or $PRIVSWEEP_DATA to point elsewhere)."
    )


def load(root: Path, download: bool = True) -> Dataset:
    splits = load_idx_splits(find_fashion_mnist(root, download))
    built = {
        name: idx_split(images, labels, {"coarse": coarse_labels(labels)})
        for name, (images, labels) in splits.items()
    }
    return Dataset("fashion_mnist", built["train"], built["test"], {"class": 10, "coarse": 2})
