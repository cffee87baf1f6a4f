"""Differential-privacy baselines on the raw image, from the papers' comparisons.

Like `input_noise`: nothing trainable runs on the client, the whole backbone is the server
(model.split is ignored, the split is "0"), the noise is drawn afresh on every release (in
training and at attack time) and the released image is clamped to the pixel range [0, 1].
Images are in [0, 1] here, so a scale of s in [0, 1] units is 255 * s in the papers' 0-255
units.

- `dp_laplace`: DeepObfuscator's "DP" baseline (Sec. 4.3): "injects Laplace noise [into]
  the raw data x with diverse privacy budgets {0.1, 0.2, 0.5, 0.9}". Laplace mechanism:
  z = clamp(x + Lap(0, b)), b = sensitivity / epsilon, i.i.d. per pixel and channel.
  The paper defines neither the sensitivity nor the neighbouring relation. Choice: the
  per-pixel sensitivity is the full pixel range (`sensitivity: 1.0` = 255 grey levels), i.e.
  every pixel value is epsilon-DP on its own (neighbouring images differ in one pixel value).
- `dp_pixelation`: Fan's differentially private pixelation (Privacy Partitioning, App. D,
  Algorithm 2): cut the image into cells of b x b pixels, replace each cell by its mean
  (p(I; b)), add one Laplace draw per cell of scale 255 * m / (b^2 * epsilon) (m: the
  neighbourhood, images that differ in at most m pixels), i.e. m / (b^2 * epsilon) here.
  Algorithm 2 writes the output as "I~ = I + N~" but says "add noises to the pixelated
  image" and its sensitivity proof is that of pix(I): we add the noise to p(I; b) (adding
  cell noise to the unpixelated I would not be the algorithm whose privacy is proved).
  Choices: border cells of an image whose side b does not divide hold n < b^2 pixels, are
  averaged over those and get scale m / (n * epsilon) (their sensitivity is 255 * m / n;
  full cells get exactly the formula); colour channels are pixelated and noised
  independently (one draw per cell and channel, Fan's algorithm is for grey images).
- White-box inversion: both mechanisms clamp to [0, 1], which has no gradient where a noisy
  pixel leaves the range, so the inversion differentiates through a straight-through clamp
  (`release_for_inversion`); the cell averaging and the noise are differentiable as they are.
- Training protocol: the server is trained on released (noised) images by default, as for
  `input_noise` (the best utility the mechanism allows). `clean_training: true` trains it
  on clean images and applies the mechanism only at release/evaluation (eval mode), as the
  Privacy Partitioning paper applied pixelation to a pretrained model.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch.nn import functional as F

from trainables.methods.base import NoParams, clamp_straight_through
from trainables.methods.obfuscation import ObfuscationMethod


class DPLaplaceParams(NoParams):
    epsilon: float = Field(0.5, gt=0, description="privacy budget per pixel value")
    sensitivity: float = Field(1.0, gt=0, description="per-pixel sensitivity in [0, 1] units (1 = 255 grey levels)")
    clean_training: bool = Field(False, description="train the server on clean images, noise only at release")


class DPPixelationParams(NoParams):
    b: int = Field(2, ge=1, description="pixelation grid cell side, pixels")
    m: int = Field(1, ge=1, description="m-neighbourhood: neighbouring images differ in at most m pixels")
    epsilon: float = Field(1.0, gt=0, description="privacy budget")
    clean_training: bool = Field(False, description="train the server on clean images, noise only at release")


def laplace_noise(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Standard Laplace(0, 1) draws (scale 1) with the dtype and device of `like`."""
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    return torch.distributions.Laplace(zero, torch.ones_like(zero)).sample(shape)


class _ImageMechanism(ObfuscationMethod):
    """Split "0": the release is a randomised image; the whole backbone is the server."""

    releases = "image"

    def mechanism(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        if self.training and self.params.clean_training:
            return features
        return self.mechanism(features).clamp(0, 1)

    def release_for_inversion(self, x: torch.Tensor) -> torch.Tensor:
        return clamp_straight_through(self.mechanism(self.client(x)))


class DPLaplace(_ImageMechanism):
    Params = DPLaplaceParams

    @property
    def laplace_scale(self) -> float:
        """b = sensitivity / epsilon, in [0, 1] pixel units."""
        return self.params.sensitivity / self.params.epsilon

    def mechanism(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.laplace_scale * laplace_noise(tuple(x.shape), x)


class DPPixelation(_ImageMechanism):
    Params = DPPixelationParams

    @property
    def laplace_scale(self) -> float:
        """m / (b^2 * epsilon) in [0, 1] pixel units (255 m / (b^2 epsilon) grey levels), full cells."""
        return self.params.m / (self.params.b**2 * self.params.epsilon)

    def mechanism(self, x: torch.Tensor) -> torch.Tensor:
        b, height, width = self.params.b, x.shape[-2], x.shape[-1]
        pool = dict(kernel_size=b, stride=b, ceil_mode=True, divisor_override=1)
        sums = F.avg_pool2d(x, **pool)
        counts = F.avg_pool2d(torch.ones(1, 1, height, width, dtype=x.dtype, device=x.device), **pool)
        scale = self.params.m / (counts * self.params.epsilon)
        cells = sums / counts + scale * laplace_noise(tuple(sums.shape), x)
        return cells.repeat_interleave(b, dim=-2).repeat_interleave(b, dim=-1)[..., :height, :width]
