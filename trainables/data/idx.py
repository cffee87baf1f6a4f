"""Reader for the IDX format of MNIST and Fashion-MNIST (plain or gzipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from trainables.data.base import Split
from trainables.errors import InputError

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise InputError(f"{path} is not an unsigned-byte IDX file; re-download it.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def has_idx_files(folder: Path) -> bool:
    return all(_find(folder, stem) for pair in _FILES.values() for stem in pair)


def load_idx_splits(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images (N, 1, 28, 28) and labels (N,) of the train and test splits in `folder`."""
    splits = {}
    for split, (image_stem, label_stem) in _FILES.items():
        images = read_idx(_find(folder, image_stem))[:, None]
        labels = read_idx(_find(folder, label_stem)).astype(np.int64)
        splits[split] = (images, labels)
    return splits


def idx_split(images: np.ndarray, labels: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> Split:
    return Split(np.ascontiguousarray(images), {"class": labels, **(extra or {})})
