"""Released batches of a frozen defense: what every attacker trains and is evaluated on.

A release with defense randomness (noise, random pruning, DP mechanisms) is drawn afresh for
every batch of every epoch, so no attacker ever sees one fixed noise draw. A deterministic
release (`Method.release_is_random()` False: no defense, the trained-encoder defenses,
DISCO's hard mask) gives the same z for the same image every time, so it is computed once per
split and batches index the stored z. Why: the attack suite runs up to `attacks.epochs`
epochs over the train split plus a validation pass after each; releasing once removes the
client's forward pass from every one of them (quickstart `none`, split 1, 9k images: the
client forward is about a fifth of an attacker epoch here). A stored split larger than
RELEASE_CACHE_BYTES is streamed instead, so a large dataset never exhausts device memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from trainables.data.batches import TensorSplit

RELEASE_CACHE_BYTES = 2 * 2**30

Release = Callable[[torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, dict[str, torch.Tensor]]


def targets_of(x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"image": x, "task": y_task, "private": y_private}


class ReleasedSplit:
    """(z, targets) batches of one split under one frozen release."""

    def __init__(self, release: Release, data: TensorSplit, batch_size: int, random: bool):
        self.release, self.data, self.batch_size = release, data, batch_size
        self.stored: torch.Tensor | None = None
        if not random and len(data) > 0:
            self.stored = self._store()  # None: too large to hold, streamed instead

    def __len__(self) -> int:
        return len(self.data)

    def num_batches(self) -> int:
        return self.data.num_batches(self.batch_size)

    @torch.no_grad()
    def _store(self) -> torch.Tensor | None:
        parts = []
        for x, *_ in self.data.batches(self.batch_size):
            parts.append(self.release(x))
            if len(parts) == 1 and parts[0][0].numel() * parts[0].element_size() * len(self.data) > RELEASE_CACHE_BYTES:
                return None
        stored = torch.cat(parts)
        return stored.contiguous(memory_format=torch.channels_last) if stored.dim() == 4 else stored

    def batches(self, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Shuffled with `generator`, else in order; each z released without autograd."""
        if self.stored is None:
            for x, y_task, y_private in self.data.batches(self.batch_size, generator):
                with torch.no_grad():
                    z = self.release(x)
                yield z, targets_of(x, y_task, y_private)
            return
        for index in self.data.batch_indices(self.batch_size, generator):
            yield self.stored[index], targets_of(self.data.images_at(index), *self.data.labels_at(index))
