"""Noise baselines from the papers' comparisons, trained for the task only.

- `activation_noise`: Gaussian noise of std sigma on the features of a task-only split
  encoder. Choice: the noise is present in training too, so the server adapts to it
  (Noisy ARL without the adversary, lambda = 0).
- `input_noise`: the papers' "Image Noise": Gaussian noise of std sigma on the image,
  clipped to the pixel range [0, 1]; nothing else runs on the client and the whole backbone
  is the server (model.split is ignored, the split is "0"), as in Noisy ARL Sec. 5.2.
"""

from __future__ import annotations

import torch
from pydantic import Field

from trainables.methods.base import AdversarialSplitMethod, MethodContext, NoParams
from trainables.methods.noisy_arl import add_gaussian_noise
from trainables.models import INPUT_SPLIT, SplitArchitecture


class SigmaParams(NoParams):
    sigma: float = Field(1.0, ge=0, description="std of the Gaussian noise")


class ActivationNoise(AdversarialSplitMethod):
    Params = SigmaParams

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        return add_gaussian_noise(features, self.params.sigma)


class InputNoise(AdversarialSplitMethod):
    Params = SigmaParams

    def __init__(self, ctx: MethodContext, params: SigmaParams):
        arch = ctx.arch
        image_arch = SplitArchitecture(arch.backbone, INPUT_SPLIT, arch.input_shape, arch.options)
        super().__init__(MethodContext(image_arch, ctx.task_classes, ctx.private_classes, ctx.lr), params)

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        return add_gaussian_noise(features, self.params.sigma).clamp(0, 1)
