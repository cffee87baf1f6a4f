"""MNIST: `class` (10). Torchvision layout (`<root>/MNIST/raw`) or download."""

from __future__ import annotations

from pathlib import Path

from trainables.data.base import Dataset
from trainables.data.idx import has_idx_files, idx_split, load_idx_splits
from trainables.data.torchvision_download import download_idx
from trainables.errors import InputError

ATTRIBUTES = ("class",)

def load(root: Path, download: bool = True) -> Dataset:
    folder = root / "MNIST" / "raw"
    if not has_idx_files(folder) and not (download and download_idx("MNIST", root)):
        raise InputError(
            f"MNIST files not found in {folder} and the download failed. Put the four "
            "*-ubyte(.gz) files there (torchvision layout) or set `dataset.root`/$PRIVSWEEP_DATA."
        )
    splits = load_idx_splits(folder)
    built = {name: idx_split(images, labels) for name, (images, labels) in splits.items()}
    return Dataset("mnist", built["train"], built["test"], {"class": 10})
