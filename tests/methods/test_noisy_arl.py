"""Mechanisms of `noisy_arl` (Algorithm 1 of the Noisy ARL paper), on small_cnn and 16x16
RGB inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from .helpers import PRIVATE_CLASSES, TASK_CLASSES, assert_client_gets_only_the_task_gradient
from .helpers import accumulated_grads as grads
from .helpers import make_3x4 as make
from .helpers import rand_batch_3x4 as batch


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_noisy_arl_draws_fresh_noise_of_std_sigma_on_every_release(mode):
    sigma = 0.7
    method = make("noisy_arl", {"sigma": sigma, "lambda": 0.01})
    getattr(method, mode)()
    x, _, _ = batch()
    with torch.no_grad():
        features = method.client(x)
        z1, z2 = method.release(x), method.release(x)
    assert z1.shape == z2.shape == features.shape
    assert not torch.equal(z1, z2)
    for z in (z1, z2):
        noise = z - features
        assert noise.std().item() == pytest.approx(sigma, rel=0.05)
        assert abs(noise.mean().item()) < 0.05
    assert (z1 - z2).std().item() == pytest.approx(sigma * 2**0.5, rel=0.05)  # independent draws



def test_noisy_arl_sigma_zero_releases_the_features():
    method = make("noisy_arl", {"sigma": 0.0}).eval()
    x, _, _ = batch()
    with torch.no_grad():
        assert torch.equal(method.release(x), method.client(x))



@pytest.mark.parametrize("lam", [0.5, 0.01])
def test_noisy_arl_train_step_is_algorithm_1(lam):
    """After one `train_step`: the task model holds dL_t/dtheta_T, the proxy adversary
    dL_leak/dtheta_A and the obfuscator d(L_t - lambda L_leak)/dtheta_O, all on the same noisy
    z, computed here explicitly with torch.autograd on a copy taken before the step."""
    method = make("noisy_arl", {"sigma": 0.3, "lambda": lam}).train()
    x, y_task, y_private = batch()
    reference = copy.deepcopy(method)
    params_before = {k: v.clone() for k, v in method.named_parameters()}

    torch.manual_seed(7)
    losses = method.train_step(x, y_task, y_private)

    torch.manual_seed(7)  # the same noise draw
    z = reference.release(x)
    task_loss = F.cross_entropy(reference.server(z), y_task)
    leak_loss = F.cross_entropy(reference.adversary(z), y_private)
    g_task = torch.autograd.grad(task_loss, list(reference.server.parameters()), retain_graph=True)
    g_adv = torch.autograd.grad(leak_loss, list(reference.adversary.parameters()), retain_graph=True)
    g_obf = torch.autograd.grad(task_loss - lam * leak_loss, list(reference.client.parameters()))

    assert losses["task_loss"] == pytest.approx(task_loss.item(), rel=1e-5)
    assert losses["proxy_ce"] == pytest.approx(leak_loss.item(), rel=1e-5)
    for name, expected in (("server", g_task), ("adversary", g_adv), ("client", g_obf)):
        got = grads(getattr(method, name))
        assert len(got) == len(expected) > 0
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6, msg=f"{name} gradient")
    # the obfuscator's gradient really contains the adversarial term
    g_task_only = torch.autograd.grad(
        F.cross_entropy(reference.server(reference.release(x)), y_task), list(reference.client.parameters())
    )
    assert any(not torch.allclose(g, t, atol=1e-7) for g, t in zip(grads(method.client), g_task_only, strict=True))
    # and every network took its optimiser step
    for name, p in method.named_parameters():
        if name.startswith(("client.", "server.", "adversary.")) and p.grad is not None and p.grad.abs().sum() > 0:
            assert not torch.equal(p, params_before[name]), name



def test_noisy_arl_lambda_zero_adversary_has_no_influence_on_the_client():
    method = make("noisy_arl", {"sigma": 0.3, "lambda": 0.0}).train()
    other = copy.deepcopy(method)
    with torch.no_grad():  # a very different adversary
        for p in other.adversary.parameters():
            p.add_(torch.randn_like(p))
    x, y_task, y_private = batch()
    torch.manual_seed(3)
    method.train_step(x, y_task, y_private)
    torch.manual_seed(3)
    other.train_step(x, y_task, y_private)
    for a, b in zip(grads(method.client), grads(other.client), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(method.client.parameters(), other.client.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # while the adversaries themselves were trained (and differ)
    assert any(g.abs().sum() > 0 for g in grads(method.adversary))
    assert any(not torch.allclose(a, b) for a, b in zip(grads(method.adversary), grads(other.adversary), strict=True))

    # and the client's gradient is exactly that of the task loss
    reference = make("noisy_arl", {"sigma": 0.3, "lambda": 0.0}).train()
    assert_client_gets_only_the_task_gradient(reference, x, y_task, y_private, seed=5)



def test_noisy_arl_has_three_separate_optimisers_and_deploys_only_the_client():
    method = make("noisy_arl")
    assert set(method.optimizers) == {"client", "server", "adversary"}
    owned = {name: {id(p) for p in getattr(method, name).parameters()} for name in method.optimizers}
    for name, optimizer in method.optimizers.items():
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert ids == owned[name]
    assert method.client_network() is method.client
    x, _, _ = batch(4)
    with torch.no_grad():
        assert method.serve(method.release(x)).shape == (4, TASK_CLASSES)
        assert method.proxy_leak(method.release(x)).shape == (4, PRIVATE_CLASSES)
