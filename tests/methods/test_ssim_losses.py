"""The differentiable SSIM / MS-SSIM losses of `trainables.methods.ssim_losses` (used by
privacy_partitioning and deep_obfuscator), checked against torchmetrics."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure as tm_ms_ssim,
)
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from trainables.methods.ssim_losses import ms_ssim, ssim
from trainables.metrics import ms_ssim_settings

SHAPES = [(3, 16, 16), (1, 28, 28), (3, 32, 32), (2, 20, 24)]



def _pair(shape, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(5, *shape, generator=g)
    # reconstruction-like predictions (the target blurred and noised), a constant image (zero
    # variance), an inverted one (negative structure terms, clipped by the relu) and an unrelated one
    preds = (F.avg_pool2d(target, 3, 1, 1) + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    preds[2] = 0.5
    preds[3] = 1 - target[3]
    preds[4] = torch.rand(shape, generator=g)
    return preds, target



@pytest.mark.parametrize("shape", SHAPES)
def test_ssim_matches_torchmetrics_value_and_gradient(shape):
    preds, target = _pair(shape)
    ours_in, theirs_in = preds.clone().requires_grad_(), preds.clone().requires_grad_()
    ours = ssim(ours_in, target)
    theirs = tm_ssim(theirs_in, target, data_range=1.0)  # Gaussian sigma 1.5, 11 taps
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    ours.backward()
    theirs.backward()
    assert torch.allclose(ours_in.grad, theirs_in.grad, atol=1e-5, rtol=1e-3)
    assert ssim(target, target).item() == pytest.approx(1.0, abs=1e-5)



@pytest.mark.parametrize("shape", SHAPES)
def test_ms_ssim_matches_torchmetrics_value_and_gradient(shape):
    kernel, betas = ms_ssim_settings(*shape[1:])
    assert len(betas) >= 2
    preds, target = _pair(shape, seed=1)
    ours_in, theirs_in = preds.clone().requires_grad_(), preds.clone().requires_grad_()
    ours = ms_ssim(ours_in, target)
    theirs = tm_ms_ssim(theirs_in, target, data_range=1.0, kernel_size=kernel, betas=betas, normalize="relu")
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    ours.backward()
    theirs.backward()
    assert torch.isfinite(ours_in.grad).all()
    assert torch.allclose(ours_in.grad, theirs_in.grad, atol=1e-5, rtol=1e-3)
