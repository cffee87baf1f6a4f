"""Mechanisms of `dp_laplace` (Laplace noise on the image). What it shares with
dp_pixelation is in `test_dp_methods.py`."""

from __future__ import annotations

import pytest
import torch

from .helpers import IMAGE, make


def test_dp_laplace_noise_has_the_formula_scale():
    method = make("dp_laplace", {"epsilon": 50.0, "sensitivity": 1.0}).eval()
    assert method.laplace_scale == pytest.approx(1.0 / 50.0)
    x = torch.full((64, *IMAGE), 0.5)
    torch.manual_seed(1)
    noise = method.release(x) - x
    assert noise.abs().mean().item() == pytest.approx(method.laplace_scale, rel=0.05)
    assert not torch.equal(method.release(x), method.release(x))  # drawn afresh per release
    loud = make("dp_laplace", {"epsilon": 0.1}).eval().release(x)
    assert loud.min() >= 0 and loud.max() <= 1  # clamped to the pixel range
