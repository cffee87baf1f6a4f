"""What the two image-releasing DP methods, `dp_laplace` and `dp_pixelation`, share."""

from __future__ import annotations

import pytest
import torch

from .helpers import make
from .helpers import rand_batch as batch


@pytest.mark.parametrize("name", ["dp_laplace", "dp_pixelation"])
def test_dp_methods_run_the_whole_backbone_on_the_server_and_clean_training(name):
    method = make(name, {"epsilon": 1.0, "clean_training": True})
    assert method.ctx.arch.split == "0" and not list(method.client_network().parameters())
    x, _, _ = batch(4)
    assert torch.equal(method.train().release(x), x)  # clean images in training
    assert not torch.equal(method.eval().release(x), x)  # the mechanism at release
