"""Mechanisms of `privacy_partitioning` (a suite of reconstruction defenders; the model
trains against the best one). Synthetic 16x16 images keep them fast."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

import trainables.methods.privacy_partitioning as pp_module
from trainables.methods.privacy_partitioning import FCDefender, PrivacyPartitioning
from trainables.methods.ssim_losses import ssim
from trainables.methods.updates import keeping_buffers, step
from trainables.models.reversed_decoder import ReversedDecoder

from .helpers import changed_entries, close, images, make, param_names, snapshot
from .helpers import loss_grads as grads
from .helpers import pixel_batch as batch


def _pp(params: dict, lr: float = 1e-3, **kwargs) -> PrivacyPartitioning:
    return make("privacy_partitioning", params, lr=lr, **kwargs).train()



def test_pp_defender_suite_is_deconv_fc_sparse_fc_and_the_deconv_reverses_pp_cnn_pool1():
    method = _pp({"defenders": 3, "optimizer": "sgd"}, backbone="pp_cnn", split="pool1", image=(3, 32, 32))
    deconv, fc, sparse = method.defenders
    assert method.defender_names == ("deconv", "fc", "sparse_fc")
    assert isinstance(deconv, ReversedDecoder)
    transposed = [m for m in deconv.modules() if isinstance(m, nn.ConvTranspose2d)]
    # conv5x5 -> conv5x5 -> pool1 reversed: a stride-2 5x5 deconv (pool + conv), then a stride-1 one
    assert [(m.stride, m.kernel_size, m.in_channels, m.out_channels) for m in transposed] == [
        ((2, 2), (5, 5), 32, 32), ((1, 1), (5, 5), 32, 3)]
    assert isinstance(fc, FCDefender) and not any(isinstance(m, nn.Dropout) for m in fc.modules())
    assert isinstance(sparse, FCDefender) and [m.p for m in sparse.modules() if isinstance(m, nn.Dropout)] == [0.5]
    z = method.release(images(2, image=(3, 32, 32)))
    for defender in method.defenders:
        out = defender(z)
        assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    group = method.optimizers["defender_deconv"].param_groups[0]
    assert isinstance(method.optimizers["client"], torch.optim.SGD) and (group["momentum"], group["weight_decay"]) == (0.9, 5e-4)



def test_pp_every_defender_steps_on_detached_features_and_step_three_leaves_them_alone(monkeypatch):
    method = _pp({"defenders": 3, "distance": "mse", "lambda": 1.0})
    replay = copy.deepcopy(method)
    client_before = snapshot(method.client)
    calls = []
    real_step = pp_module.step

    def spy(loss, optimizers, *modules):
        client_params = list(method.client.parameters())
        reaches_client = any(
            g is not None for g in torch.autograd.grad(loss, client_params, retain_graph=True, allow_unused=True))
        calls.append((modules, reaches_client, changed_entries(method.client, client_before)))
        real_step(loss, optimizers, *modules)

    monkeypatch.setattr(pp_module, "step", spy)
    x, y, s = batch()
    torch.manual_seed(7)
    losses = method.train_step(x, y, s)

    # 1. one step per defender, in suite order, none reaching the client, the client untouched
    assert [modules for modules, _, _ in calls[:3]] == [(d,) for d in method.defenders]
    assert [reaches for _, reaches, _ in calls] == [False, False, False, True]
    assert all(not changed & param_names(method.client) for _, _, changed in calls[:3])
    # 3. then exactly one step of the model
    assert calls[3][0] == (method.client, method.server)

    # replay step 1 by hand: the defenders end exactly there (step 2/3 changed neither their
    # parameters nor their batch-norm statistics), and step 2 chose among the updated defenders
    torch.manual_seed(7)
    h = replay.client(x)
    for name, defender in zip(replay.defender_names, replay.defenders, strict=True):
        step(F.mse_loss(defender(h.detach()), x), [replay.optimizers[f"defender_{name}"]], defender)
    for got, expected in zip(method.defenders, replay.defenders, strict=True):
        assert changed_entries(got, snapshot(expected)) == set()
    with torch.no_grad(), keeping_buffers(*replay.defenders):
        distances = [F.mse_loss(d(h), x).item() for d in replay.defenders]
    best = min(range(3), key=distances.__getitem__)
    assert method.last_best_defender == replay.defender_names[best]
    assert losses["defender_distance"] == pytest.approx(distances[best], rel=1e-5)
    # and the defenders did move in step 1
    fresh = _pp({"defenders": 3, "distance": "mse", "lambda": 1.0})
    assert all(changed_entries(d, snapshot(f)) & param_names(d) for d, f in zip(method.defenders, fresh.defenders, strict=True))



def test_pp_defenders_train_at_ten_times_the_model_rate_unless_set_and_take_defender_steps(monkeypatch):
    """§V-B: defenders at 1e-3, the model at 1e-4; `defender_steps` updates per batch."""
    method = _pp({"defenders": 2}, lr=1e-4)
    rates = {name: optimizer.param_groups[0]["lr"] for name, optimizer in method.optimizers.items()}
    assert rates == {"client": 1e-4, "server": 1e-4, "defender_deconv": pytest.approx(1e-3), "defender_fc": pytest.approx(1e-3)}
    assert _pp({"defender_lr": 5e-3}, lr=1e-4).optimizers["defender_deconv"].param_groups[0]["lr"] == 5e-3
    method = _pp({"defenders": 2, "defender_steps": 3})
    updated = []
    real_step = pp_module.step
    monkeypatch.setattr(pp_module, "step", lambda loss, optimizers, *modules: (updated.append(modules), real_step(loss, optimizers, *modules)))
    method.train_step(*batch())
    assert updated == [(method.defenders[0],)] * 3 + [(method.defenders[1],)] * 3 + [(method.client, method.server)]



@pytest.mark.parametrize("best", [1, 0])
def test_pp_model_gradient_flows_through_the_best_defender_only(monkeypatch, best):
    method = _pp({"defenders": 3, "lambda": 1.0}, lr=0.0)  # lr 0: gradients can be recomputed after the step
    bias = [0.5, 0.5, 0.5]
    bias[best] = 0.0  # this defender's distance is lowest
    current = {}
    reached = []
    for k, defender in enumerate(method.defenders):

        def hook(module, inputs, output, k=k):
            current["k"] = k
            if inputs[0].requires_grad:  # step 2 (model); step 1 sees detached features
                output.register_hook(lambda grad, k=k: reached.append(k))

        defender.register_forward_hook(hook)
    real_distance = PrivacyPartitioning.distance.__get__(method)
    monkeypatch.setattr(method, "distance", lambda x, r: real_distance(x, r) + bias[current["k"]])

    x, y, s = batch()
    method.train_step(x, y, s)
    assert method.last_best_defender == method.defender_names[best]
    assert reached == [best]  # no gradient came back through any other defender's output

    got = [p.grad.clone() for p in method.client.parameters()]
    h = method.client(x)
    task = F.cross_entropy(method.server(h), y)
    with keeping_buffers(*method.defenders):
        by_defender = [grads(task - (1 - ssim(method.defenders[k](h), x)), method.client) for k in (0, 1)]
    assert close(got, by_defender[best], atol=1e-6)
    assert not close(got, by_defender[1 - best], atol=1e-6)
    assert close([p.grad for p in method.server.parameters()], grads(task, method.server))



def test_pp_lambda_zero_is_plain_task_training():
    method = _pp({"defenders": 2, "lambda": 0.0})
    plain = copy.deepcopy(method)
    assert plain.optimizers["client"].param_groups[0]["params"][0] is next(plain.client.parameters())
    x, y, s = batch()
    method.train_step(x, y, s)
    step(F.cross_entropy(plain.server(plain.client(x)), y), [plain.optimizers["client"], plain.optimizers["server"]],
         plain.client, plain.server)
    for got, expected in ((method.client, plain.client), (method.server, plain.server)):
        before = snapshot(expected)
        assert all(torch.allclose(v, before[k], atol=1e-7) for k, v in got.state_dict().items())
    assert changed_entries(method.client, snapshot(_pp({"defenders": 2}).client))  # it did train



def test_pp_ssim_distance_is_one_minus_torchmetrics_ssim_and_mse_is_the_pixel_mse():
    x, recon = images(6, seed=1), images(6, seed=2)
    recon = 0.5 * x + 0.5 * recon
    ssim_method, mse_method = _pp({"distance": "ssim"}), _pp({"distance": "mse"})
    assert ssim_method.distance(x, recon).item() == pytest.approx(1 - tm_ssim(recon, x, data_range=1.0).item(), abs=1e-5)
    assert ssim_method.distance(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert mse_method.distance(x, recon).item() == pytest.approx(((x - recon) ** 2).mean().item(), rel=1e-6)
