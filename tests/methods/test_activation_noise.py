"""Mechanisms of `activation_noise` (Gaussian noise on the client features, task-only
training), on small_cnn and 16x16 RGB inputs."""

from __future__ import annotations

import pytest
import torch

from .helpers import assert_client_gets_only_the_task_gradient
from .helpers import make_3x4 as make
from .helpers import rand_batch_3x4 as batch


@pytest.mark.parametrize("sigma", [0.25, 1.5])
def test_activation_noise_adds_fresh_noise_of_std_sigma(sigma):
    method = make("activation_noise", {"sigma": sigma}).eval()
    x, _, _ = batch()
    with torch.no_grad():
        features = method.client(x)
        z1, z2 = method.release(x), method.release(x)
    assert not torch.equal(z1, z2)
    for z in (z1, z2):
        assert (z - features).std().item() == pytest.approx(sigma, rel=0.05)



def test_activation_noise_is_task_only_training():
    method = make("activation_noise", {"sigma": 0.5}).train()
    assert_client_gets_only_the_task_gradient(method, *batch(), seed=11)
