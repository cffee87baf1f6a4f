"""Mechanisms of `dp_pixelation` (pixelated image plus Laplace noise, one draw per cell).
What it shares with dp_laplace is in `test_dp_methods.py`."""

from __future__ import annotations

import pytest
import torch

from .helpers import IMAGE, make


def test_dp_pixelation_noise_has_the_formula_scale_one_draw_per_cell():
    method = make("dp_pixelation", {"b": 2, "m": 3, "epsilon": 20.0}).eval()
    assert method.laplace_scale == pytest.approx(3 / (2**2 * 20.0))
    x = torch.full((64, *IMAGE), 0.5)
    torch.manual_seed(1)
    noise = method.release(x) - x
    cells = noise.unfold(2, 2, 2).unfold(3, 2, 2)  # (N, C, 8, 8, 2, 2)
    assert torch.allclose(cells, cells[..., :1, :1].expand_as(cells))  # constant within a cell
    assert cells[..., 0, 0].abs().mean().item() == pytest.approx(method.laplace_scale, rel=0.05)



def test_dp_pixelation_replaces_cells_by_their_mean_and_border_cells_are_partial():
    method = make("dp_pixelation", {"b": 4, "m": 1, "epsilon": 1e9}).eval()  # noise ~ 1e-9
    x = torch.rand(2, 3, 10, 10)
    z = method.mechanism(x)
    assert torch.allclose(z[..., :4, :4], x[..., :4, :4].mean(dim=(-2, -1), keepdim=True).expand(2, 3, 4, 4), atol=1e-5)
    assert torch.allclose(z[..., 8:, 8:], x[..., 8:, 8:].mean(dim=(-2, -1), keepdim=True).expand(2, 3, 2, 2), atol=1e-5)
