"""Mechanism tests for `disco`, `maxent`, `dp_laplace`, `dp_pixelation` and the attack suite's
inference-time release ratios. Synthetic 16x16 images and tiny slices keep them fast."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainables.attacks.suite import AttackData, run_attack_suite
from trainables.config import AttackConfig, TrialConfig
from trainables.data import synthetic
from trainables.data.batches import TensorSplit
from trainables.errors import InputError
from trainables.methods import MethodContext, method_class
from trainables.methods.channel_masks import hard_channel_mask, kept_channels
from trainables.methods.disco import soft_channel_mask
from trainables.methods.maxent import prediction_entropy
from trainables.models import SplitArchitecture
from trainables.trial import Trial, check_config

IMAGE = (3, 16, 16)


def make(name: str, params: dict | None = None, split: str = "2", lr: float = 1e-3, classes=(3, 3)):
    torch.manual_seed(0)
    cls = method_class(name)
    arch = SplitArchitecture("small_cnn", split, IMAGE)
    return cls(MethodContext(arch, classes[0], classes[1], lr), cls.Params.model_validate(params or {}))


def batch(n: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *IMAGE, generator=g), torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)


def enter_phase2(method) -> None:
    method.start_epoch(epoch=1, epochs=2, steps_per_epoch=1)  # phase1_fraction 0.5 -> step 1 is phase 2
    assert method.phase == 2


# --------------------------------------------------------------------------------- DISCO


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


def test_disco_phase1_trains_client_and_predictor_only_and_schedule_is_by_step():
    method = make("disco", {"phase1_fraction": 0.5}).train()
    method.start_epoch(epoch=1, epochs=3, steps_per_epoch=4)  # 6 phase-1 steps of 12
    assert method.phase == 1
    method.train_step(*batch())
    assert all(p.grad is not None for p in method.client.parameters())
    assert all(p.grad is None for p in method.filter.parameters())
    assert all(p.grad is None for p in method.adversary.parameters())
    method.train_step(*batch())
    assert method.phase == 2
    method.start_epoch(epoch=0, epochs=3, steps_per_epoch=4)  # a resumed trial restarts the counter
    assert method.phase == 1


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


# ------------------------------------------------------------------------- release ratios


def tiny_attack_data() -> AttackData:
    data = synthetic.load(train_size=64, test_size=32, image_size=16)
    names = ("shape", "color")
    train, test = (TensorSplit.from_split(split, list(names), torch.device("cpu")) for split in (data.train, data.test))
    return AttackData(train, None, test, names, (3, 3))


@pytest.mark.parametrize("name", ["disco", "random_pruning"])
def test_suite_logs_metrics_at_each_release_ratio(name):
    method = make(name, {"pruning_ratio": 0.5})
    cfg = AttackConfig(epochs=1, batch_size=32, gallery=2, release_ratios=[0.2, 0.8], reconstruction=["mirror", "fc"])
    report = run_attack_suite(method, tiny_attack_data(), cfg, seed=0)
    for key in ("utility/acc", "utility/acc_retrained", "privacy/leak_acc", "privacy/leak_acc/mlp", "recon/ssim", "recon/l1"):
        assert key in report.metrics
        for ratio in ("0.2", "0.8"):
            assert f"{key}:R{ratio}" in report.metrics
    assert method.release_ratio == 0.5  # restored after the suite


def test_release_ratios_on_a_method_without_the_knob_is_an_input_error():
    data = tiny_attack_data()
    cfg = AttackConfig(epochs=1, release_ratios=[0.5])
    with pytest.raises(InputError, match="attacks.release_ratios"):
        run_attack_suite(make("none"), data, cfg, seed=0)
    config = TrialConfig(method="maxent", dataset={"name": "synthetic", "task": "shape", "private": "color"}, attacks=cfg)
    with pytest.raises(InputError, match="attacks.release_ratios"):
        check_config(config)
    bad = TrialConfig(method="disco", dataset={"name": "synthetic", "task": "shape", "private": "color"},
                      attacks=AttackConfig(release_ratios=[1.0]))
    with pytest.raises(InputError, match="attacks.release_ratios"):
        check_config(bad)


def test_disco_trial_end_to_end_with_release_ratios():
    data = synthetic.load(train_size=96, test_size=32, image_size=16)
    config = TrialConfig(
        method="disco", params={"preprocess": True, "grid": 4, "optimizer": "adam"},
        dataset={"name": "synthetic", "task": "shape", "private": "color"},
        train={"epochs": 2, "batch_size": 32, "device": "cpu"},
        attacks={"epochs": 1, "batch_size": 32, "gallery": 2, "release_ratios": [0.3]},
    )
    trial = Trial(config, data)
    metrics, _ = trial.run()
    assert trial.method._phase1_steps == 3 and trial.method.phase == 2  # 2 epochs x 3 steps, half each
    assert "train/proxy_loss" not in trial.history[0] and trial.history[1]["train/proxy_loss"] > 0  # phase 1 has no proxy
    assert "privacy/leak_acc:R0.3" in metrics and "utility/acc:R0.3" in metrics


# -------------------------------------------------------------------------------- MaxEnt


def test_maxent_gradients_are_entropy_for_the_encoder_and_likelihood_for_the_adversary():
    method = make("maxent", {"alpha": 1.0}, lr=0.0).train()
    x, y_task, y_private = batch()
    method.train_step(x, y_task, y_private)
    client, adversary = list(method.client.parameters()), list(method.adversary.parameters())
    z = method.client(x)
    logits = method.adversary(z)
    entropy_up = torch.autograd.grad(prediction_entropy(logits), client, retain_graph=True)
    # alpha = 1: the encoder descends -H, i.e. its gradient is exactly -dH/dtheta
    assert all(torch.allclose(p.grad, -g, atol=1e-6) for p, g in zip(client, entropy_up, strict=True))
    likelihood = torch.autograd.grad(F.cross_entropy(method.adversary(z.detach()), y_private), adversary)
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(adversary, likelihood, strict=True))


def test_maxent_encoder_steps_raise_the_adversary_prediction_entropy():
    method = make("maxent", {"alpha": 1.0}, lr=1e-2).train()
    for group in method.optimizers["adversary"].param_groups:
        group["lr"] = 0.0  # hold the adversary fixed to see the encoder's direction alone
    x, y_task, y_private = batch(32)

    def entropy() -> float:
        with torch.no_grad():
            return prediction_entropy(method.adversary(method.client(x))).item()

    before = entropy()
    for _ in range(5):
        method.train_step(x, y_task, y_private)
    assert entropy() > before + 1e-3


# ------------------------------------------------------------------------------------ DP


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


@pytest.mark.parametrize("name", ["dp_laplace", "dp_pixelation"])
def test_dp_methods_run_the_whole_backbone_on_the_server_and_clean_training(name):
    method = make(name, {"epsilon": 1.0, "clean_training": True})
    assert method.ctx.arch.split == "0" and not list(method.client_network().parameters())
    x, _, _ = batch(4)
    assert torch.equal(method.train().release(x), x)  # clean images in training
    assert not torch.equal(method.eval().release(x), x)  # the mechanism at release


def test_disco_trains_at_the_papers_sgd_rate_not_the_shared_adam_rate():
    """App. A: SGD with momentum at 0.01, whatever train.lr (an Adam rate elsewhere) is."""
    rates = {optimizer.param_groups[0]["lr"] for optimizer in make("disco", lr=1e-3).optimizers.values()}
    assert rates == {0.01}
    assert {o.param_groups[0]["lr"] for o in make("disco", {"lr": 0.05}).optimizers.values()} == {0.05}
    adam = make("disco", {"optimizer": "adam"}, lr=1e-3)
    assert {type(o).__name__ for o in adam.optimizers.values()} == {"Adam"}
    assert {o.param_groups[0]["lr"] for o in adam.optimizers.values()} == {1e-3}
