"""Mechanisms of `disco` (channel pruning by a learned filter, two training phases).
Synthetic 16x16 images and tiny slices keep them fast."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.data import synthetic
from trainables.errors import InputError
from trainables.methods.channel_masks import hard_channel_mask, kept_channels
from trainables.methods.disco import soft_channel_mask
from trainables.trial import Trial

from .helpers import make
from .helpers import rand_batch as batch


def enter_phase2(method) -> None:
    method.start_phase("filter")
    assert method.phase == "filter"



@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.6, 0.9])
def test_disco_release_mask_keeps_exactly_round_one_minus_r_channels(ratio):
    method = make("disco", {"pruning_ratio": ratio}).eval()
    x, _, _ = batch()
    with torch.no_grad():
        features = method.features(x)
        mask = method.mask(features)
        z = method.release(x)
    channels = features.shape[1]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(dim=1) == round((1 - ratio) * channels)).all()
    assert torch.equal(z, features * mask[:, :, None, None])



def test_disco_training_mask_is_soft_and_release_mask_hard():
    method = make("disco", {"pruning_ratio": 0.5})
    x, _, _ = batch()
    features = method.features(x).detach()
    keep = kept_channels(features.shape[1], 0.5)
    method.train()
    soft = method.mask(features)
    assert soft.requires_grad  # differentiable towards the filter generator
    assert ((soft > 0) & (soft < 1)).any() and not torch.isin(soft, torch.tensor([0.0, 1.0])).all()
    assert ((soft > 0.5).sum(dim=1) == keep).all()  # same channels as the hard mask
    scores = method.channel_scores(features)  # same (train-mode) scores for both masks
    assert torch.equal(hard_channel_mask(scores, 0.5), (soft_channel_mask(scores, 0.5, 0.03) > 0.5).float())
    method.eval()
    hard = method.mask(features)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}
    assert ((hard == 1).sum(dim=1) == keep).all()



@pytest.mark.parametrize("adversary", ["attribute", "input"])
def test_disco_phase2_adversary_gradient_never_reaches_the_client(adversary):
    method = make("disco", {"adversary": adversary}).train()
    enter_phase2(method)
    before = [p.detach().clone() for p in method.client.parameters()]
    losses = method.train_step(*batch())
    assert losses["proxy_loss"] > 0
    assert all(p.grad is None or not p.grad.any() for p in method.client.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, method.client.parameters(), strict=True))
    filter_grads = [p.grad for p in method.filter.parameters()]
    assert all(g is not None for g in filter_grads) and any(g.abs().sum() > 0 for g in filter_grads)
    assert all(p.grad is not None for p in method.adversary.parameters())



def test_disco_client_trained_in_phase2_gets_only_the_task_gradient():
    # lr 0: the step leaves the weights as they were, so the gradients can be recomputed
    method = make("disco", {"client_phase2": True}).train()
    for optimizer in method.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = 0.0
    enter_phase2(method)
    x, y_task, y_private = batch()
    method.train_step(x, y_task, y_private)
    got = [p.grad.clone() for p in method.client.parameters()]
    features = method.features(x)
    z = method.apply_mask(features, method.mask(features))
    task_loss = F.cross_entropy(method.server(z), y_task)
    expected = torch.autograd.grad(task_loss, list(method.client.parameters()), retain_graph=True)
    adv_loss = F.cross_entropy(method.adversary(z), y_private)
    adversarial = torch.autograd.grad(adv_loss, list(method.client.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected, strict=True))
    assert any(not torch.allclose(a, a + b, atol=1e-6) for a, b in zip(got, adversarial, strict=True))



def test_disco_phase1_trains_client_and_predictor_only_until_the_trainer_starts_phase2():
    method = make("disco").train()
    assert method.phases == ("client", "filter") and method.phase == "client"  # before any start_phase
    for _ in range(3):
        method.zero_grad(set_to_none=True)
        method.train_step(*batch())
        assert method.phase == "client"  # steps never change the phase: the trainer's convergence rule does
    assert all(p.grad is not None for p in method.client.parameters())
    assert all(p.grad is None for p in method.filter.parameters())
    assert all(p.grad is None for p in method.adversary.parameters())
    enter_phase2(method)
    method.train_step(*batch())
    assert all(p.grad is not None for p in method.filter.parameters())



def test_disco_release_ratio_hook_changes_the_kept_count():
    method = make("disco", {"pruning_ratio": 0.5}).eval()
    x, _, _ = batch()
    channels = method.ctx.arch.z_shape[0]
    with torch.no_grad():
        assert (method.mask(method.features(x)).sum(1) == round(0.5 * channels)).all()
        with method.at_release_ratio(0.8):
            z = method.release(x)
            assert (method.mask(method.features(x)).sum(1) == round(0.2 * channels)).all()
        assert (method.mask(method.features(x)).sum(1) == round(0.5 * channels)).all()
    assert ((z.abs().flatten(2).sum(2) > 0).sum(1) <= round(0.2 * channels)).all()



def test_disco_preprocess_module_shapes_and_errors():
    method = make("disco", {"preprocess": True, "grid": 4})
    x, _, _ = batch(4)
    assert method.pre(x).shape == (4, 16, 16, 16)  # d^2 = 16 channels at image size
    assert method.release(x).shape[1:] == method.ctx.arch.z_shape
    with pytest.raises(InputError, match="params.grid"):
        make("disco", {"preprocess": True, "grid": 17})
    with pytest.raises(InputError, match="model.split"):
        make("disco", split="0")



def test_disco_trial_end_to_end_with_release_ratios():
    data = synthetic.load(train_size=96, test_size=32, image_size=16)
    config = TrialConfig(
        method="disco", params={"preprocess": True, "grid": 4, "optimizer": "adam"},
        dataset={"name": "synthetic", "task": "shape", "private": "color"},
        train={"epochs": 2, "batch_size": 32, "device": "cpu"},
        attacks={"epochs": 1, "batch_size": 32, "gallery": 2, "release_ratios": [0.3],
                 "whitebox": {"images": 4, "selection_images": 4, "steps": 5}},  # the default 1600 steps: minutes
    )
    trial = Trial(config, data)
    metrics, _ = trial.run()
    assert trial.method.phase == "filter" and metrics["train/epochs_run"] == 4  # each phase to its cap of 2 epochs
    assert metrics["train/epochs_run/client"] == metrics["train/epochs_run/filter"] == 2 and metrics["train/converged"] == 0
    assert "train/proxy_loss" not in trial.history[1] and trial.history[2]["train/proxy_loss"] > 0  # phase 1 has no proxy
    assert "privacy/leak_acc:R0.3" in metrics and "utility/acc:R0.3" in metrics



def test_disco_trains_at_the_papers_sgd_rate_not_the_shared_adam_rate():
    """App. A: SGD with momentum at 0.01, whatever train.lr (an Adam rate elsewhere) is."""
    rates = {optimizer.param_groups[0]["lr"] for optimizer in make("disco", lr=1e-3).optimizers.values()}
    assert rates == {0.01}
    assert {o.param_groups[0]["lr"] for o in make("disco", {"lr": 0.05}).optimizers.values()} == {0.05}
    adam = make("disco", {"optimizer": "adam"}, lr=1e-3)
    assert {type(o).__name__ for o in adam.optimizers.values()} == {"Adam"}
    assert {o.param_groups[0]["lr"] for o in adam.optimizers.values()} == {1e-3}


def test_disco_phase1_is_validated_on_the_unpruned_features_it_trains():
    method = make("disco", {"pruning_ratio": 0.6}).eval()
    x, _, _ = batch()
    with torch.no_grad():
        assert torch.equal(method.validation_release(x), method.features(x))  # phase `client`
        method.start_phase("filter")
        assert torch.equal(method.validation_release(x), method.release(x))
        assert not torch.equal(method.release(x), method.features(x))
