"""Mechanisms of `input_noise` (clamped Gaussian noise on the image), on small_cnn and
16x16 RGB inputs."""

from __future__ import annotations

import pytest
import torch

from trainables.models import SplitArchitecture

from .helpers import IMAGE, TASK_CLASSES
from .helpers import make_3x4 as make
from .helpers import rand_batch_3x4 as batch


def test_input_noise_is_clamped_and_runs_nothing_on_the_client():
    method = make("input_noise", {"sigma": 2.0}, split="3").eval()
    x, _, _ = batch()
    assert sum(p.numel() for p in method.client_network().parameters()) == 0
    assert method.ctx.arch.split == "0"
    assert method.ctx.arch.z_shape == IMAGE
    full = SplitArchitecture("small_cnn", "0", IMAGE).server(TASK_CLASSES)
    assert sum(p.numel() for p in method.server.parameters()) == sum(p.numel() for p in full.parameters())
    with torch.no_grad():
        z1, z2 = method.release(x), method.release(x)
        logits = method.serve(z1)
    assert z1.shape == x.shape
    assert logits.shape == (len(x), TASK_CLASSES)
    assert z1.min().item() == 0.0 and z1.max().item() == 1.0  # sigma 2 clamps often
    assert ((z1 == 0) | (z1 == 1)).float().mean() > 0.3
    assert (z1 >= 0).all() and (z1 <= 1).all()
    assert not torch.equal(z1, z2)



def test_input_noise_noise_has_std_sigma_where_not_clamped():
    sigma = 0.05
    method = make("input_noise", {"sigma": sigma}).eval()
    x = torch.full((64, *IMAGE), 0.5)  # far from the clamp bounds at 10 sigma
    with torch.no_grad():
        z = method.release(x)
    assert (z - x).std().item() == pytest.approx(sigma, rel=0.05)
