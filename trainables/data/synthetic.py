"""Synthetic shapes: a filled circle, square or triangle in one of three colours on a noisy
background. Attributes `shape` (3) and `color` (3), independent of each other. Generated
deterministically from `seed`; used by tests and as a data-free smoke dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.data.base import Dataset, Split

ATTRIBUTES = ("shape", "color")
COLORS = np.array([[230, 40, 40], [40, 200, 40], [40, 80, 230]], dtype=np.float32)


def _masks(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) * 2 - 1
    circle = xx**2 + yy**2 <= 0.55
    square = (np.abs(xx) <= 0.6) & (np.abs(yy) <= 0.6)
    triangle = (yy >= -0.7) & (yy <= 0.7) & (np.abs(xx) <= (yy + 0.7) / 1.4 * 0.8)
    return np.stack([circle, square, triangle]).astype(np.float32)


def make_split(n: int, size: int, rng: np.random.Generator) -> Split:
    shape = rng.integers(0, 3, n)
    color = rng.integers(0, 3, n)
    shift = rng.integers(-size // 8, size // 8 + 1, (n, 2))
    masks = _masks(size)[shape]
    masks = np.stack([np.roll(m, tuple(s), axis=(0, 1)) for m, s in zip(masks, shift, strict=True)])
    rgb = COLORS[color][:, :, None, None] * masks[:, None]
    images = np.clip(rgb + rng.normal(0, 20, rgb.shape), 0, 255).astype(np.uint8)
    return Split(images, {"shape": shape.astype(np.int64), "color": color.astype(np.int64)})


def load(root: Path | None = None, train_size: int = 2048, test_size: int = 512, image_size: int = 16, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset(
        "synthetic",
        make_split(train_size, image_size, rng),
        make_split(test_size, image_size, rng),
        {"shape": 3, "color": 3},
    )
