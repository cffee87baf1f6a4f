"""The in-memory form every dataset loader produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split of a dataset: uint8 images (N, C, H, W) and integer attributes (N,)."""

    images: np.ndarray
    attributes: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}")
        for name, values in self.attributes.items():
            if values.shape != (len(self.images),):
                raise ValueError(f"attribute {name!r} has shape {values.shape}, expected ({len(self.images)},)")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices: np.ndarray) -> Split:
        return Split(self.images[indices], {k: v[indices] for k, v in self.attributes.items()})


@dataclass(frozen=True)
class Dataset:
    """A decoded dataset: its official train/test splits and each attribute's number of classes."""

    name: str
    train: Split
    test: Split
    num_classes: dict[str, int] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]
