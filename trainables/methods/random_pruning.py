"""`random_pruning`: DISCO's random-pruning baseline. A task-only split model whose released
features have a random fraction R of their channels zeroed, drawn per input and per release
(training and inference). Exactly round((1 - R) * C) channels are kept; kept channels are
not rescaled (the baseline prunes, it does not do dropout)."""

from __future__ import annotations

import torch
from pydantic import Field

from trainables.methods.base import AdversarialSplitMethod, NoParams


class PruningParams(NoParams):
    pruning_ratio: float = Field(0.5, ge=0, lt=1, description="fraction R of channels zeroed per release")


def random_channel_mask(batch: int, channels: int, ratio: float, device: torch.device) -> torch.Tensor:
    keep = round((1 - ratio) * channels)
    ranks = torch.rand(batch, channels, device=device).argsort(dim=1).argsort(dim=1)
    return (ranks < keep).float()


class RandomPruning(AdversarialSplitMethod):
    Params = PruningParams

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        mask = random_channel_mask(features.shape[0], features.shape[1], self.params.pruning_ratio, features.device)
        return features * mask.view(*mask.shape, *([1] * (features.dim() - 2)))
