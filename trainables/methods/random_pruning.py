"""`random_pruning`: DISCO's random-pruning baseline. A task-only split model whose released
features have a random fraction R of their channels zeroed, drawn per input and per release
(training and inference). The white-box inversion differentiates through the release as it
is (the mask is drawn independently of x). Exactly round((1 - R) * C) channels are kept; kept channels are
not rescaled (the baseline prunes, it does not do dropout). R is also an inference-time knob
(`at_release_ratio`): the frozen model can be released at another ratio."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
from pydantic import Field

from trainables.methods.base import MethodContext, NoParams, overriding
from trainables.methods.channel_masks import kept_channels, random_channel_mask
from trainables.methods.obfuscation import ObfuscationMethod


class PruningParams(NoParams):
    pruning_ratio: float = Field(0.5, ge=0, lt=1, description="fraction R of channels zeroed per release")


class RandomPruning(ObfuscationMethod):
    Params = PruningParams

    def __init__(self, ctx: MethodContext, params: PruningParams):
        super().__init__(ctx, params)
        self.release_ratio = params.pruning_ratio

    def release_is_random(self) -> bool:
        return kept_channels(self.ctx.arch.z_shape[0], self.release_ratio) < self.ctx.arch.z_shape[0]

    def at_release_ratio(self, ratio: float) -> AbstractContextManager:
        return overriding(self, "release_ratio", ratio)

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        mask = random_channel_mask(features.shape[0], features.shape[1], self.release_ratio, features.device)
        return features * mask.view(*mask.shape, *([1] * (features.dim() - 2)))
