"""Metric computations: classification, image similarity, client cost.

Image metrics come from torchmetrics (SSIM, MS-SSIM, PSNR with data range 1, L1, MSE) and
LPIPS from `lpips` (AlexNet). Choices made here:
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
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection
from torchmetrics.functional.classification import multiclass_matthews_corrcoef
from torchmetrics.image import (
    MultiScaleStructuralSimilarityIndexMeasure,
    PeakSignalNoiseRatio,
    StructuralSimilarityIndexMeasure,
)

log = logging.getLogger(__name__)

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
HIGHER_IS_BETTER = {"ssim": True, "ms_ssim": True, "psnr": True, "l1": False, "mse": False, "lpips": False}
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
    try:
        import lpips  # noqa: F401
    except ImportError as error:
        return f"LPIPS needs the `lpips` package ({error})"
    return None


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        import lpips

        self.net = lpips.LPIPS(net="alex", verbose=False).eval()
        self.total = 0.0
        self.count = 0

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if min(images.shape[-2:]) < LPIPS_MIN_SIZE:
            images = F.interpolate(images, size=(LPIPS_MIN_SIZE, LPIPS_MIN_SIZE), mode="bilinear", align_corners=False)
        return images * 2 - 1

    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.total += self.net(self._prepare(preds), self._prepare(target)).sum().item()
        self.count += len(preds)

    def compute(self) -> torch.Tensor:
        return torch.tensor(self.total / max(self.count, 1))


class ImageSimilarity:
    """Accumulates every reconstruction metric over the test set for one decoder."""

    _reported_lpips = False

    def __init__(self, image_shape: tuple[int, int, int], device: torch.device, lpips: bool = True):
        kernel, betas = ms_ssim_settings(*image_shape[1:])
        ssim_kernel = min(11, image_shape[1] - (1 - image_shape[1] % 2))
        self.metrics = MetricCollection(
            {
                "ssim": StructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=ssim_kernel),
                "ms_ssim": MultiScaleStructuralSimilarityIndexMeasure(
                    data_range=1.0, kernel_size=kernel, betas=betas, normalize="relu"
                ),
                "psnr": PeakSignalNoiseRatio(data_range=1.0),
                "l1": MeanAbsoluteError(),
                "mse": MeanSquaredError(),
            }
        ).to(device)
        reason = lpips_unavailable_reason()
        self.lpips = LPIPS().to(device) if reason is None and lpips else None
        if reason and not ImageSimilarity._reported_lpips:
            log.warning("recon/lpips is not computed: %s", reason)
            ImageSimilarity._reported_lpips = True

    def update(self, reconstruction: torch.Tensor, image: torch.Tensor) -> None:
        # torchmetrics' L1/MSE flatten with .view(-1), which fails on channels-last RGB batches
        reconstruction, image = reconstruction.contiguous(), image.contiguous()
        self.metrics.update(reconstruction, image)
        if self.lpips is not None:
            self.lpips.update(reconstruction, image)

    def compute(self) -> dict[str, float]:
        values = {name: float(value) for name, value in self.metrics.compute().items()}
        if self.lpips is not None:
            values["lpips"] = float(self.lpips.compute())
        return {k: v for k, v in values.items() if math.isfinite(v)}


def matthews(preds: torch.Tensor, target: torch.Tensor, classes: int) -> float:
    return float(multiclass_matthews_corrcoef(preds, target, num_classes=classes))


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
