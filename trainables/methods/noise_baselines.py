"""Noise baselines from the papers' comparisons, trained for the task only.

- `activation_noise`: Gaussian noise of std sigma on the features of a task-only split
  encoder. Choice: the noise is present in training too, so the server adapts to it
  (Noisy ARL without the adversary, lambda = 0).
- `input_noise`: the papers' "Image Noise": Gaussian noise of std sigma on the image,
  clipped to the pixel range [0, 1]; nothing else runs on the client and the whole backbone
  is the server (model.split is ignored, the split is "0"), as in Noisy ARL Sec. 5.2.
  White-box inversion: the clamp has no gradient where a noisy pixel leaves [0, 1], so the
  inversion differentiates through a straight-through clamp (`release_for_inversion`).
"""

from __future__ import annotations

import torch
from pydantic import Field

from trainables.methods.base import NoParams, clamp_straight_through
from trainables.methods.noisy_arl import add_gaussian_noise
from trainables.methods.obfuscation import ObfuscationMethod


class SigmaParams(NoParams):
    sigma: float = Field(1.0, ge=0, description="std of the Gaussian noise")


class ActivationNoise(ObfuscationMethod):
    Params = SigmaParams

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        return add_gaussian_noise(features, self.params.sigma)

    def release_is_random(self) -> bool:
        return self.params.sigma > 0


class InputNoise(ObfuscationMethod):
    Params = SigmaParams
    releases = "image"

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        return add_gaussian_noise(features, self.params.sigma).clamp(0, 1)

    def release_is_random(self) -> bool:
        return self.params.sigma > 0

    def release_for_inversion(self, x: torch.Tensor) -> torch.Tensor:
        return clamp_straight_through(add_gaussian_noise(self.client(x), self.params.sigma))
