"""Differentiable SSIM / MS-SSIM losses, for the methods that train against reconstruction
(`privacy_partitioning`'s SSIM distance, `deep_obfuscator`'s MS-SSIM term).

`ssim` / `ms_ssim` have exactly torchmetrics' definitions
(`structural_similarity_index_measure` and `multiscale_structural_similarity_index_measure`
with a Gaussian window, sigma 1.5 - torchmetrics then always uses an 11-tap window, whatever
`kernel_size` says -, reflect padding, k1 = 0.01, k2 = 0.03, data range 1; MS-SSIM with
`normalize="relu"` and the betas of `trainables.metrics.ms_ssim_settings`), i.e. the
`recon/ssim` and `recon/ms_ssim` the attack suite reports. Images in [0, 1], computed in fp32
outside autocast. Why not call torchmetrics directly: its Gaussian window is a depthwise
11x11 convolution whose backward pass on CPU (oneDNN) takes ~0.35 s for a batch of 128 28x28
images - 3-6x the cost of the whole training step of small_cnn. Here the window is applied as
two matrix products (rows, columns) with the reflect padding folded into the matrices: same
numbers (tests compare values and gradients with torchmetrics to 1e-5), ~50x faster backward.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch.nn import functional as F

from trainables.metrics import ms_ssim_settings

SIGMA = 1.5
WINDOW = int(3.5 * SIGMA + 0.5) * 2 + 1  # torchmetrics' Gaussian window size for sigma 1.5: 11
C1, C2 = 0.01**2, 0.03**2  # (k1 * data_range)^2, (k2 * data_range)^2


@lru_cache(maxsize=64)
def _window_matrix(n: int, device: torch.device) -> torch.Tensor:
    """(n, n) matrix M: M @ v = the Gaussian window slid over v reflect-padded by WINDOW // 2."""
    pad = WINDOW // 2
    if n <= pad:
        raise ValueError(f"SSIM needs images larger than {pad} px per side at every scale; got {n}")
    offsets = torch.arange(WINDOW, dtype=torch.float64) - pad
    gauss = torch.exp(-((offsets / SIGMA) ** 2) / 2)
    gauss = gauss / gauss.sum()
    impulses = F.pad(torch.eye(n, dtype=torch.float64).unsqueeze(1), (pad, pad), mode="reflect")
    responses = F.conv1d(impulses, gauss.view(1, 1, -1)).squeeze(1)  # row i: response to e_i
    return responses.T.contiguous().float().to(device)


def _window(x: torch.Tensor) -> torch.Tensor:
    rows = _window_matrix(x.shape[-2], x.device)
    cols = _window_matrix(x.shape[-1], x.device)
    return rows @ x @ cols.T


def _ssim_and_cs(preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM (whole map) and contrast-structure term (map without the padded border)."""
    mu_p, mu_t = _window(preds), _window(target)
    mu_pp, mu_tt, mu_pt = mu_p * mu_p, mu_t * mu_t, mu_p * mu_t
    var_p = (_window(preds * preds) - mu_pp).clamp(min=0.0)
    var_t = (_window(target * target) - mu_tt).clamp(min=0.0)
    cov = _window(preds * target) - mu_pt
    upper, lower = 2 * cov + C2, var_p + var_t + C2
    ssim_map = ((2 * mu_pt + C1) * upper) / ((mu_pp + mu_tt + C1) * lower)
    pad = WINDOW // 2
    cs_map = (upper / lower)[..., pad:-pad, pad:-pad]
    return ssim_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


def ssim_per_image(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of each image of a batch, shape (B,)."""
    with torch.autocast(preds.device.type, enabled=False):
        value, _ = _ssim_and_cs(preds.float().contiguous(), target.float().contiguous())
        return value


def ssim(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of a batch (a differentiable scalar)."""
    return ssim_per_image(preds, target).mean()


def ms_ssim(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean MS-SSIM of a batch (a differentiable scalar), relu-normalised."""
    with torch.autocast(preds.device.type, enabled=False):
        _, betas = ms_ssim_settings(*preds.shape[-2:])
        preds, target = preds.float().contiguous(), target.float().contiguous()
        terms = []
        for _scale in betas:
            sim, cs = _ssim_and_cs(preds, target)
            terms.append(torch.relu(cs))
            preds, target = F.avg_pool2d(preds, 2), F.avg_pool2d(target, 2)
        terms[-1] = torch.relu(sim)
        stacked = torch.stack(terms)
        weights = torch.tensor(betas, device=stacked.device).view(-1, 1)
        return torch.prod(stacked**weights, dim=0).mean()
