"""Colored Fashion-MNIST: each garment tinted with one of K colours (Kim et al., "Learning
Not to Learn"), the biased setting DISCO compares against.

Choices the setting leaves open, made here:
- Class c's own colour is palette[c mod K]. With probability `correlation` an image gets
  its class's colour, otherwise a colour drawn uniformly from all K, so `correlation=0`
  makes colour independent of class and `correlation=1` makes it a function of class.
- The test split uses `test_correlation` (default: the same as train).
- The tint multiplies the grey intensity: pixel = intensity * colour, so the background
  stays black and the shape is unchanged.
- Randomness is seeded by `seed` (default 0), independent of the trial seed, so every
  trial of a sweep sees the same data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.data import fashion_mnist
from trainables.data.base import Dataset, Split
from trainables.errors import InputError

ATTRIBUTES = (*fashion_mnist.ATTRIBUTES, "color")
PALETTE = np.array(
    [
        [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255],
        [0, 255, 255], [255, 128, 0], [128, 0, 255], [255, 255, 255], [128, 128, 128],
    ],
    dtype=np.uint16,
)


def tint(split: Split, correlation: float, colors: int, rng: np.random.Generator) -> Split:
    classes = split.attributes["class"]
    own = classes % colors
    random_color = rng.integers(0, colors, size=len(classes))
    color = np.where(rng.random(len(classes)) < correlation, own, random_color).astype(np.int64)
    rgb = PALETTE[color][:, :, None, None]  # (N, 3, 1, 1)
    images = (split.images.astype(np.uint16) * rgb // 255).astype(np.uint8)
    return Split(images, {**split.attributes, "color": color})


def load(
    root: Path,
    correlation: float = 0.9,
    test_correlation: float | None = None,
    colors: int = 10,
    seed: int = 0,
    download: bool = True,
) -> Dataset:
    if not 0.0 <= correlation <= 1.0 or not (test_correlation is None or 0.0 <= test_correlation <= 1.0):
        raise InputError("dataset.options.correlation and test_correlation must lie in [0, 1].")
    if not 2 <= colors <= len(PALETTE):
        raise InputError(f"dataset.options.colors must be in 2..{len(PALETTE)}, got {colors}.")
    base = fashion_mnist.load(root, download)
    rng = np.random.default_rng(seed)
    train = tint(base.train, correlation, colors, rng)
    test = tint(base.test, correlation if test_correlation is None else test_correlation, colors, rng)
    return Dataset("colored_fashion_mnist", train, test, {**base.num_classes, "color": colors})
