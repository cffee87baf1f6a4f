"""The white-box inversion attacker: it inverts what can be inverted, averages fresh defense
randomness, differentiates through the straight-through paths, and runs inside the suite.

The clients here are test doubles (a fixed random linear map of the pixels), not one of the
platform's methods: an invertible client is the case where the right answer is known."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from trainables.attacks.attackers.whitebox import invert, total_variation, whitebox_reconstructions
from trainables.config import WhiteboxConfig
from trainables.data import synthetic
from trainables.data.batches import TensorSplit
from trainables.methods import METHODS
from trainables.methods.base import Method, MethodContext, NoParams
from trainables.models import SplitArchitecture
from trainables.trial import Trial

SHAPE = (3, 16, 16)


def grey(n: int) -> torch.Tensor:
    """The white-box attacker's start: n mid-grey images."""
    return torch.full((n, *SHAPE), 0.5)


class LinearClient(Method):
    """release(x) = W x (+ sigma * fresh noise), W a fixed random orthogonal matrix."""

    def __init__(self, sigma: float = 0.0, seed: int = 0):
        arch = SplitArchitecture("small_cnn", "2", SHAPE, {})
        super().__init__(MethodContext(arch, 2, 3, 1e-3), NoParams())
        g = torch.Generator().manual_seed(seed)
        pixels = SHAPE[0] * SHAPE[1] * SHAPE[2]
        self.register_buffer("weight", torch.linalg.qr(torch.randn(pixels, pixels, generator=g))[0])
        self.sigma = sigma
        self.noise_draws: list[torch.Tensor] = []

    def release(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.weight.T
        if self.sigma > 0:
            noise = self.sigma * torch.randn_like(z)
            self.noise_draws.append(noise.detach().clone())
            z = z + noise
        return z

    def release_is_random(self) -> bool:
        return self.sigma > 0

    def serve(self, z):
        return z[:, :2]

    def train_step(self, x, y_task, y_private):
        return {"task_loss": 0.0}

    def client_network(self) -> nn.Module:
        return nn.Identity()


def synthetic_test_split() -> TensorSplit:
    data = synthetic.load(train_size=8, test_size=16, image_size=SHAPE[1], seed=1)
    return TensorSplit.from_split(data.test, "shape", "color", torch.device("cpu"))


def test_whitebox_recovers_the_image_from_an_invertible_linear_client():
    test = synthetic_test_split()
    cfg = WhiteboxConfig(images=16, steps=400, lr=0.1, tv=0.0)
    originals, reconstructions, _ = whitebox_reconstructions(LinearClient(), test, cfg)
    assert originals.shape == reconstructions.shape == (16, *SHAPE)
    assert ssim(reconstructions, originals, data_range=1.0).item() > 0.95
    # and far from where it started (mid-grey), so the optimisation did the work
    assert ssim(torch.full_like(originals, 0.5), originals, data_range=1.0).item() < 0.5


def test_whitebox_averages_fresh_draws_of_the_defense_randomness_per_step():
    method = LinearClient(sigma=0.5)
    test = synthetic_test_split()
    cfg = WhiteboxConfig(images=4, steps=5, draws=3, tv=0.1)
    whitebox_reconstructions(method, test, cfg)
    draws = method.noise_draws
    assert len(draws) == 1 + cfg.steps * cfg.draws  # the observed release, then draws per step
    distinct = {tuple(d.flatten()[:8].tolist()) for d in draws}
    assert len(distinct) == len(draws)  # every draw is fresh: none reused


def test_a_deterministic_release_is_not_drawn_repeatedly():
    method = LinearClient()
    calls = []
    original = method.release_for_inversion
    method.release_for_inversion = lambda x: calls.append(1) or original(x)
    invert(method, method.release(torch.rand(2, *SHAPE)), grey(2), WhiteboxConfig(steps=7, draws=4), tv=0.1)
    assert len(calls) == 7


def test_the_tv_weight_is_chosen_on_validation_images_and_never_on_test():
    method = LinearClient(sigma=0.3)
    test, selection = synthetic_test_split(), synthetic_test_split()
    test.images = torch.zeros_like(test.images)  # would favour the strongest prior, were it used
    seen: list[tuple[int, bool]] = []
    original = method.release

    def spy(x):
        seen.append((len(x), bool(x.sum().item() > 0)))
        return original(x)

    method.release = spy
    cfg = WhiteboxConfig(images=4, steps=60, tv=[0.0, 1e3], selection_images=4)
    _, _, tv = whitebox_reconstructions(method, test, cfg, selection)
    assert tv == 0.0  # a huge TV weight flattens the images; validation MSE says so
    # both candidates scored first, together, on their own copies of the 4 validation
    # (non-zero) images; the test images are released only after the choice
    test_release = seen.index((4, False))
    assert seen[0] == (8, True) and all(n == 8 for n, _ in seen[:test_release])


@pytest.mark.parametrize(("selection_steps", "expected"), [(10, 10), (200, 60)])
def test_the_tv_choice_inverts_for_selection_steps_at_most_the_attack_steps(selection_steps, expected):
    method = LinearClient(sigma=0.3)
    test, selection = synthetic_test_split(), synthetic_test_split()
    sizes: list[int] = []
    original = method.release

    def spy(x):
        sizes.append(len(x))
        return original(x)

    method.release = spy
    cfg = WhiteboxConfig(images=4, steps=60, tv=[0.0, 1e3], selection_images=4, selection_steps=selection_steps)
    whitebox_reconstructions(method, test, cfg, selection)
    # the candidates' 8 copies: one release of the targets, then one per step; the 4 test
    # images: one release of the targets, then one per step of the full budget
    assert sizes == [8] * (1 + expected) + [4] * (1 + 60)


def test_inverting_the_tv_candidates_together_gives_each_its_own_inversion():
    """One optimisation of every candidate's copy of the images (as the TV choice runs it)
    reconstructs each copy as its candidate's inversion on its own would."""
    method = LinearClient()
    images = synthetic_test_split().images_at(slice(0, 4))
    cfg = WhiteboxConfig(steps=30)
    target = method.release(images)
    alone = [invert(method, target, grey(len(target)), cfg, tv=tv) for tv in (0.0, 0.5)]
    weights = torch.tensor([0.0, 0.5]).repeat_interleave(len(images))
    together = invert(method, target.repeat(2, 1), grey(2 * len(target)), cfg, tv=weights)
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)  # the weights do differ


def test_total_variation_is_zero_on_constant_images_and_counts_each_edge():
    flat = torch.full((1, 1, 4, 4), 0.3)
    assert total_variation(flat).item() == 0.0
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:] = 1.0  # one vertical edge: every row has one unit jump over 3 neighbours
    assert total_variation(step).item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("name", ["input_noise", "dp_laplace", "dp_pixelation"])
def test_image_mechanisms_give_the_inversion_a_gradient_where_the_clamp_saturates(name):
    """A straight-through clamp: pixels pushed out of [0, 1] by the noise still get a gradient."""
    params = {"input_noise": {"sigma": 2.0}, "dp_laplace": {"epsilon": 0.5}, "dp_pixelation": {"epsilon": 0.1, "b": 2}}[name]
    arch = SplitArchitecture("small_cnn", "2", SHAPE, {})
    cls = METHODS[name]
    method = cls(MethodContext(arch, 2, 3, 1e-3), cls.Params(**params)).eval()
    x = torch.rand(4, *SHAPE, requires_grad=True)
    with torch.no_grad():
        saturated = ((method.release(x) == 0) | (method.release(x) == 1)).float().mean().item()
    assert saturated > 0.2  # the clamp is active on many pixels
    released = method.release_for_inversion(x)
    assert released.min() >= 0 and released.max() <= 1  # the forward pass is the mechanism
    released.sum().backward()
    assert (x.grad != 0).float().mean().item() > 0.95


def test_whitebox_competes_for_the_reconstruction_metrics_inside_the_suite():
    config = tiny_config(
        method="none", params={}, attacks__reconstruction=["mirror", "whitebox"],
        attacks__whitebox={"images": 16, "steps": 30},
    )
    trial = Trial(config)
    trial.train_epoch()
    metrics, report = trial.attack()
    for metric, best in (("ssim", max), ("psnr", max), ("mse", min)):
        assert f"recon/{metric}/whitebox" in metrics
        assert metrics[f"recon/{metric}"] == best(metrics[f"recon/{metric}/whitebox"], metrics[f"recon/{metric}/mirror"])
    assert report.reconstructions.shape == report.originals.shape
    assert not any(key.startswith(("attack/epochs_run", "attack/converged")) and "whitebox" in key for key in metrics)  # nothing is trained
    assert metrics["attack/whitebox_tv"] in trial.config.attacks.whitebox.tv


def test_the_inversion_runs_adam_at_the_configured_second_moment_decay(monkeypatch):
    """`beta2` reaches the optimiser (0.8 by default, not torch's 0.999: see the module docstring)."""
    seen = []

    class SpyAdam(torch.optim.Adam):
        def __init__(self, params, **options):
            seen.append(options.get("betas"))
            super().__init__(params, **options)

    monkeypatch.setattr(torch.optim, "Adam", SpyAdam)
    method = LinearClient()
    target = method.release(torch.rand(2, *SHAPE))
    invert(method, target, grey(2), WhiteboxConfig(steps=2, beta2=0.7), tv=0.1)
    invert(method, target, grey(2), WhiteboxConfig(steps=2), tv=0.1)
    assert seen == [(0.9, 0.7), (0.9, 0.8)]
