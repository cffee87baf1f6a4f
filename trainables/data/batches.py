"""Whole splits held as tensors on the training device, batched by indexing.

Like airbench's loader: the uint8 images live on the device once; a batch is one index
select and one conversion to float, never a per-sample collate. Batches come in
channels-last layout, which oneDNN and cuDNN convolutions run faster (with channels-last
models, 1.2-1.4x per training step on CPU here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from trainables.data.base import Split


@dataclass
class TensorSplit:
    images: torch.Tensor  # uint8 (N, C, H, W) on the device
    labels: dict[str, torch.Tensor]  # int64 (N,) on the device

    @classmethod
    def from_split(cls, split: Split, attributes: list[str], device: torch.device) -> TensorSplit:
        images = torch.from_numpy(np.ascontiguousarray(split.images)).to(device)
        labels = {name: torch.from_numpy(np.asarray(split.attributes[name], dtype=np.int64)).to(device) for name in attributes}
        return cls(images, labels)

    def __len__(self) -> int:
        return len(self.images)

    def batches(
        self, batch_size: int, names: tuple[str, ...], generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """(x in [0, 1], *labels) batches; shuffled when a generator is given, else in order."""
        for index in self.batch_indices(batch_size, generator):
            yield (self.images_at(index), *(self.labels[name][index] for name in names))

    def batch_indices(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor | slice]:
        """The index of each batch: a random permutation cut in batches with a generator, else slices in order."""
        n = len(self)
        order = torch.randperm(n, generator=generator).to(self.images.device) if generator is not None else None
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size] if order is not None else slice(start, start + batch_size)

    def images_at(self, index: torch.Tensor | slice) -> torch.Tensor:
        """The images at `index` as floats in [0, 1], channels-last."""
        return self.images[index].float().div_(255).contiguous(memory_format=torch.channels_last)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)
