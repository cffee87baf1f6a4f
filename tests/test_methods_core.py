"""Mechanisms of `noisy_arl` (Algorithm 1 of the Noisy ARL paper), `none`, `input_noise`,
`activation_noise` and `random_pruning`, on small_cnn and 16x16 RGB inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from trainables.methods import MethodContext, method_class
from trainables.models import SplitArchitecture
from trainables.trial import Trial

IMAGE = (3, 16, 16)
TASK_CLASSES, PRIVATE_CLASSES = 3, 4


def make(name: str, params: dict | None = None, split: str = "2", seed: int = 0):
    torch.manual_seed(seed)
    cls = method_class(name)
    arch = SplitArchitecture("small_cnn", split, IMAGE)
    return cls(MethodContext(arch, TASK_CLASSES, PRIVATE_CLASSES, 1e-3), cls.Params.model_validate(params or {}))


def batch(n: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, *IMAGE, generator=g),
        torch.randint(0, TASK_CLASSES, (n,), generator=g),
        torch.randint(0, PRIVATE_CLASSES, (n,), generator=g),
    )


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


# --------------------------------------------------------------------------- noisy_arl


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
    fresh = copy.deepcopy(reference)
    torch.manual_seed(5)
    reference.train_step(x, y_task, y_private)
    torch.manual_seed(5)
    z = fresh.release(x)
    expected = torch.autograd.grad(F.cross_entropy(fresh.server(z), y_task), list(fresh.client.parameters()))
    for g, e in zip(grads(reference.client), expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


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


# -------------------------------------------------------------------------------- none


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


# ------------------------------------------------------------------------- input_noise


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


# -------------------------------------------------------------------- activation_noise


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
    reference = copy.deepcopy(method)
    x, y_task, y_private = batch()
    torch.manual_seed(11)
    method.train_step(x, y_task, y_private)
    torch.manual_seed(11)
    z = reference.release(x)
    expected = torch.autograd.grad(F.cross_entropy(reference.server(z), y_task), list(reference.client.parameters()))
    for g, e in zip(grads(method.client), expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------- random_pruning


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.75, 0.9])
def test_random_pruning_keeps_exactly_round_one_minus_r_channels(ratio):
    method = make("random_pruning", {"pruning_ratio": ratio}).eval()
    channels = method.ctx.arch.z_shape[0]
    features = torch.rand(16, channels, 4, 4) + 0.1  # strictly positive: a zero means pruned
    z = method.obfuscate(features)
    kept = (z != 0).any(dim=(2, 3))
    assert (kept.sum(dim=1) == round((1 - ratio) * channels)).all()
    # whole channels are kept or zeroed, and kept ones are not rescaled
    assert torch.equal(z[kept], features[kept])
    assert (z[~kept] == 0).all()


def test_random_pruning_draws_a_new_mask_per_input_and_per_call():
    method = make("random_pruning", {"pruning_ratio": 0.5}).eval()
    channels = method.ctx.arch.z_shape[0]
    features = torch.rand(8, channels, 4, 4) + 0.1
    same = features[:1].expand(8, -1, -1, -1).contiguous()
    masks = (method.obfuscate(same) != 0).any(dim=(2, 3))
    assert len({tuple(m.tolist()) for m in masks}) > 1  # per input
    first = (method.obfuscate(features) != 0).any(dim=(2, 3))
    second = (method.obfuscate(features) != 0).any(dim=(2, 3))
    assert not torch.equal(first, second)  # per call


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_random_pruning_release_zeroes_whole_channels_of_the_client_features(mode):
    ratio = 0.5
    method = getattr(make("random_pruning", {"pruning_ratio": ratio}), mode)()
    x, _, _ = batch()
    with torch.no_grad():
        features = method.client(x)
        z = method.release(x)
    channels = features.shape[1]
    for zi, fi in zip(z, features, strict=True):
        equal = (zi == fi).all(dim=(1, 2))
        zero = (zi == 0).all(dim=(1, 2))
        assert (equal | zero).all()
        assert (zero & (fi != 0).any(dim=(1, 2))).sum() <= channels - round((1 - ratio) * channels)
        assert ((zi != 0).any(dim=(1, 2))).sum() <= round((1 - ratio) * channels)


def test_the_trainer_logs_every_loss_a_method_reports_under_its_own_name(make_config):
    """`train/<name>` for each name `train_step` returns, each the mean over the epoch's steps;
    no method-independent `train/adv_loss` any more."""
    trial = Trial(make_config(method="noisy_arl", params={"sigma": 0.5, "lambda": 0.1}))
    reported: list[dict[str, float]] = []
    step = trial.method.train_step

    def recording(*batch):
        reported.append(step(*batch))
        return reported[-1]

    trial.method.train_step = recording
    metrics = trial.train_epoch()
    assert {k for k in metrics if k.startswith("train/")} == {"train/task_loss", "train/proxy_ce"}
    for name in ("task_loss", "proxy_ce"):
        assert metrics[f"train/{name}"] == pytest.approx(sum(r[name] for r in reported) / len(reported))
