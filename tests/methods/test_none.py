"""Mechanisms of `none` (no defense; the proxy adversary only observes), on small_cnn and
16x16 RGB inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from .helpers import accumulated_grads as grads
from .helpers import make_3x4 as make
from .helpers import rand_batch_3x4 as batch


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_none_releases_the_client_features_unchanged(mode):
    method = getattr(make("none"), mode)()
    x, _, _ = batch()
    with torch.no_grad():
        z = method.release(x)
        assert torch.equal(z, method.client(x))
        assert torch.equal(z, method.release(x))



def test_none_proxy_adversary_only_observes():
    method = make("none").train()
    x, y_task, y_private = batch()
    reference = copy.deepcopy(method)
    torch.manual_seed(0)
    method.train_step(x, y_task, y_private)
    expected = torch.autograd.grad(F.cross_entropy(reference.server(reference.release(x)), y_task), list(reference.client.parameters()))
    for g, e in zip(grads(method.client), expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in grads(method.adversary))
