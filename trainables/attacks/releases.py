"""Released batches of a frozen defense: what every attacker trains and is evaluated on.

A release is `randomize(features(x))` (`Method.release_parts`): `features` is a function of
x alone, `randomize` the defense randomness (noise, random pruning, DP mechanisms), None
for a deterministic release (no defense, the trained-encoder defenses, DISCO's hard mask).
The features are computed once per split and stored; batches index the stored features and
draw `randomize` afresh for every batch of every epoch, so no attacker ever sees one fixed
noise draw, and the release's distribution is the one `release` samples. Why: the attack
suite runs up to `attacks.epochs` epochs over the train split plus a validation pass after
each; storing the features removes the client's forward pass from every one of them. On
the quickstart (`noisy_arl` sigma 1, split 2, 10k slice, 2 threads) releasing each batch
through the client cost 76 s of a 459 s attack phase (`benchmarks/trial_cost.py`). A
stored split larger than RELEASE_CACHE_BYTES is streamed instead, so a large dataset never
exhausts device memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from trainables.data.batches import TensorSplit
from trainables.methods.base import ReleaseParts

RELEASE_CACHE_BYTES = 2 * 2**30

Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def targets_of(x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"image": x, "task": y_task, "private": y_private}


class ReleasedSplit:
    """(z, targets) batches of one split under one frozen release."""

    def __init__(self, parts: ReleaseParts, data: TensorSplit, batch_size: int):
        self.parts, self.data, self.batch_size = parts, data, batch_size
        self.stored = self._store() if len(data) > 0 else None  # None: too large to hold, streamed instead

    def __len__(self) -> int:
        return len(self.data)

    def num_batches(self) -> int:
        return self.data.num_batches(self.batch_size)

    @torch.no_grad()
    def _store(self) -> torch.Tensor | None:
        chunks = []
        for x, *_ in self.data.batches(self.batch_size):
            chunks.append(self.parts.features(x))
            if len(chunks) == 1 and chunks[0][0].numel() * chunks[0].element_size() * len(self.data) > RELEASE_CACHE_BYTES:
                return None
        stored = torch.cat(chunks)
        return stored.contiguous(memory_format=torch.channels_last) if stored.dim() == 4 else stored

    def batches(self, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Shuffled with `generator`, else in order; each z released without autograd, its
        randomness drawn afresh."""
        if self.stored is None:
            for x, y_task, y_private in self.data.batches(self.batch_size, generator):
                with torch.no_grad():
                    z = self.parts.release(x)
                yield z, targets_of(x, y_task, y_private)
            return
        for index in self.data.batch_indices(self.batch_size, generator):
            z = self.stored[index]
            if self.parts.randomize is not None:
                with torch.no_grad():
                    z = self.parts.randomize(z)
            yield z, targets_of(self.data.images_at(index), *self.data.labels_at(index))


class DrawnOnce(ReleasedSplit):
    """One draw of a split's releases, kept in order: every attacker is evaluated on the same z
    (paired with the deployed model's predictions, and a streamed split runs the client once)."""

    def __init__(self, released: ReleasedSplit):
        self.parts, self.data, self.batch_size, self.stored = released.parts, released.data, released.batch_size, released.stored
        self.drawn = list(released.batches())

    def batches(self, generator: torch.Generator | None = None) -> Iterator[Batch]:
        if generator is not None:
            raise ValueError("a split drawn once is read in its order")
        yield from self.drawn
