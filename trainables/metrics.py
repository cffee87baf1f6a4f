"""Metric computations: classification, image similarity, client cost.

Image metrics come from torchmetrics (SSIM, MS-SSIM, PSNR with data range 1, L1, MSE, and
LPIPS: AlexNet with the v0.1 linear layers, the `lpips` package's values, which
tests/test_metrics.py checks against that package), kept per image so that every metric gets a test-set bootstrap
interval (`trainables.bootstrap`). Choices made here:
- SSIM and MS-SSIM use torchmetrics' Gaussian window (sigma 1.5), which is 11 taps whatever
  `kernel_size` says: torchmetrics sizes a Gaussian window from sigma and reads
  `kernel_size` only in MS-SSIM's input-size check. MS-SSIM on small images: the standard
  5 scales when they fit, otherwise as many as fit by torchmetrics' own conditions (side >=
  2^scales; side // max(1, scales - 1)^2 > kernel_size - 1) and by the 11-tap window's
  reflect padding at the coarsest scale (side // 2^(scales - 1) > 5); `kernel_size` is 11
  or, where that fails the check, the largest odd size that passes (it changes no number).
  28x28 and 32x32 -> 3 scales. The betas are the first `scales` standard weights
  renormalised to sum 1, and `normalize="relu"` keeps negative contrast terms of tiny scales
  from producing NaN. Every size from 16 to 256 px is tested.
- PSNR is over the whole test set (total squared error), L1/MSE are per-pixel means.
- LPIPS needs ImageNet AlexNet weights in the torch hub cache (offline machines cannot
  download them); without them the metric is absent and the reason is logged once.
  Grey images are repeated to 3 channels and images under 64 px are upsampled to 64 px so
  AlexNet's five conv stages keep a spatial extent.
"""

from __future__ import annotations

import logging
import math
from functools import cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from trainables.bootstrap import Mean, Psnr, Statistic, point_values

log = logging.getLogger(__name__)

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"
LPIPS_MIN_SIZE = 64


GAUSSIAN_PAD = 5  # the 11-tap window's reflect padding


def ms_ssim_settings(height: int, width: int) -> tuple[int, tuple[float, ...]]:
    """(kernel size for torchmetrics' check, betas) of the MS-SSIM that fits an image of this size."""
    side = min(height, width)
    for scales in range(len(MS_SSIM_BETAS), 0, -1):
        if side < 2**scales or side // 2 ** (scales - 1) <= GAUSSIAN_PAD:
            continue
        limit = side // max(1, scales - 1) ** 2  # torchmetrics: limit > kernel_size - 1
        kernel = min(11, limit if limit % 2 else limit - 1)
        betas = MS_SSIM_BETAS[:scales]
        return kernel, tuple(b / sum(betas) for b in betas)
    raise ValueError(f"MS-SSIM needs images of at least {2 * (GAUSSIAN_PAD + 1)} px per side; got {height}x{width}")


@cache
def lpips_unavailable_reason() -> str | None:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    if not cached.exists():
        return f"LPIPS needs the AlexNet ImageNet weights at {cached} (no download on this machine)"
    return None


class LPIPS(nn.Module):
    """Per-image LPIPS distances (torchmetrics' `reduction="none"`)."""

    def __init__(self):
        super().__init__()
        self.metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none")

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if min(images.shape[-2:]) < LPIPS_MIN_SIZE:
            images = F.interpolate(images, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
        return images * 2 - 1

    @torch.no_grad()
    def forward(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image distances."""
        self.metric.reset()
        self.metric.update(self._prepare(preds), self._prepare(target))
        return self.metric.compute().flatten()


class ImageSimilarity:
    """Keeps every reconstruction metric's per-image score over the test set for one
    attacker; `statistics()` turns them into the metrics (and their bootstrap intervals).
    SSIM and MS-SSIM are torchmetrics' per-image values (`reduction="none"`), whose mean is
    what torchmetrics' class metrics report; PSNR, L1 and MSE come from per-image sums of
    squared and absolute error (tested equal to torchmetrics' class metrics)."""

    _reported_lpips = False

    def __init__(self, image_shape: tuple[int, int, int], device: torch.device, lpips: bool = True):
        self.ms_ssim_kernel, self.ms_ssim_betas = ms_ssim_settings(*image_shape[1:])
        self.ssim_kernel = min(11, image_shape[1] - (1 - image_shape[1] % 2))
        self.pixels = math.prod(image_shape)
        self.scores: dict[str, list[torch.Tensor]] = {"ssim": [], "ms_ssim": [], "squared_error": [], "absolute_error": []}
        reason = lpips_unavailable_reason()
        self.lpips = LPIPS().to(device) if reason is None and lpips else None
        if self.lpips is not None:
            self.scores["lpips"] = []
        if reason and not ImageSimilarity._reported_lpips:
            log.warning("recon/lpips is not computed: %s", reason)
            ImageSimilarity._reported_lpips = True

    @torch.no_grad()
    def update(self, reconstruction: torch.Tensor, image: torch.Tensor) -> None:
        reconstruction, image = reconstruction.float().contiguous(), image.float().contiguous()
        per_image = {
            "ssim": structural_similarity_index_measure(
                reconstruction, image, data_range=1.0, kernel_size=self.ssim_kernel, reduction="none"
            ),
            "ms_ssim": multiscale_structural_similarity_index_measure(
                reconstruction, image, data_range=1.0, kernel_size=self.ms_ssim_kernel, betas=self.ms_ssim_betas,
                normalize="relu", reduction="none",
            ),
            "squared_error": (reconstruction - image).pow(2).flatten(1).sum(1),
            "absolute_error": (reconstruction - image).abs().flatten(1).sum(1),
        }
        if self.lpips is not None:
            per_image["lpips"] = self.lpips(reconstruction, image)
        for name, values in per_image.items():
            self.scores[name].append(values.detach().to("cpu", torch.float64))

    def statistics(self) -> dict[str, Statistic]:
        scores = {name: torch.cat(values) for name, values in self.scores.items()}
        statistics: dict[str, Statistic] = {
            "ssim": Mean(scores["ssim"]),
            "ms_ssim": Mean(scores["ms_ssim"]),
            "psnr": Psnr(scores["squared_error"], self.pixels),
            "l1": Mean(scores["absolute_error"] / self.pixels),
            "mse": Mean(scores["squared_error"] / self.pixels),
        }
        if "lpips" in scores:
            statistics["lpips"] = Mean(scores["lpips"])
        return statistics

    def compute(self) -> dict[str, float]:
        return point_values(self.statistics())

    @classmethod
    def of(cls, reconstructions: torch.Tensor, originals: torch.Tensor, lpips: bool = True) -> ImageSimilarity:
        """The per-image scores of `reconstructions` of `originals` (one batch)."""
        similarity = cls(tuple(originals.shape[1:]), originals.device, lpips)
        similarity.update(reconstructions, originals)
        return similarity


def _elementwise(*args, out_shape, **kwargs) -> int:
    return math.prod(out_shape)


# FlopCounterMode counts matmuls and convolutions; the papers count every floating-point
# operation of one inference, so element-wise arithmetic (noise addition, masking,
# residual additions) is counted as one FLOP per output element.
_ELEMENTWISE_OPS = (torch.ops.aten.add, torch.ops.aten.sub, torch.ops.aten.mul, torch.ops.aten.div)


@torch.no_grad()
def client_gflops(release, image_shape: tuple[int, int, int], device: torch.device) -> float:
    """GFLOPs of one client release for a single input."""
    counter = FlopCounterMode(display=False, custom_mapping={op: _elementwise for op in _ELEMENTWISE_OPS})
    with counter:
        release(torch.rand(1, *image_shape, device=device))
    return counter.get_total_flops() / 1e9


def params_mb(module: nn.Module) -> float:
    """Parameters plus buffers, in MiB (the Noisy ARL paper's "Memory (MB)")."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20
