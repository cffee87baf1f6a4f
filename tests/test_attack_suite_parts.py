"""The parts of the attack suite around the attackers: the leakage floor, the method's own
(proxy) adversaries evaluated beside the fresh ones, disjoint attacker data, and releases
stored once for deterministic methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

import trainables.attacks.training as training
from trainables.attacks.floor import leak_floor_hits
from trainables.attacks.releases import ReleasedSplit
from trainables.data import load_dataset
from trainables.data.batches import TensorSplit
from trainables.methods.base import ReleaseParts
from trainables.metric_keys import unknown_metric_reason
from trainables.trial import Trial


def leak_floor(*args) -> float:
    return leak_floor_hits(*args).float().mean().item()


def labels(pairs: dict[tuple[int, int], int]) -> tuple[torch.Tensor, torch.Tensor]:
    task = [t for (t, _), n in pairs.items() for _ in range(n)]
    private = [p for (_, p), n in pairs.items() for _ in range(n)]
    return torch.tensor(task), torch.tensor(private)


def test_leak_floor_is_the_best_guess_of_the_private_attribute_from_the_task_label():
    # task 0: private 0 (60 %) or 1; task 1: private 2 (70 %) or 3; half the examples each
    train_task, train_private = labels({(0, 0): 30, (0, 1): 20, (1, 2): 35, (1, 3): 15})
    test_task, test_private = labels({(0, 0): 6, (0, 1): 4, (1, 2): 7, (1, 3): 3})
    floor = leak_floor(train_task, train_private, test_task, test_private, 2, 4)
    assert floor == pytest.approx(0.5 * 0.6 + 0.5 * 0.7)
    # the guess is fitted on train: a test set whose majorities differ scores lower
    flipped_task, flipped_private = labels({(0, 0): 4, (0, 1): 6, (1, 2): 3, (1, 3): 7})
    assert leak_floor(train_task, train_private, flipped_task, flipped_private, 2, 4) == pytest.approx(0.35)


@pytest.mark.parametrize("correlation", [0.5, 0.9])
def test_leak_floor_on_colored_fashion_mnist_is_its_colour_correlation(correlation):
    """Colour is the class's own colour with probability rho, else uniform over K colours, so
    the best guess of the colour from the class is right with probability rho + (1 - rho) / K."""
    dataset = load_dataset("colored_fashion_mnist", {"correlation": correlation, "colors": 10})
    train, test = dataset.train.attributes, dataset.test.attributes
    tensors = [torch.tensor(np.asarray(split[k])) for split in (train, test) for k in ("class", "color")]
    floor = leak_floor(*tensors, 10, 10)
    expected = correlation + (1 - correlation) / 10
    assert floor == pytest.approx(expected, abs=4 * (expected * (1 - expected) / len(test["class"])) ** 0.5)


def test_leak_floor_of_fashion_mnist_coarse_class_is_one_in_five():
    dataset = load_dataset("fashion_mnist", {})
    train, test = dataset.train.attributes, dataset.test.attributes
    tensors = [torch.tensor(np.asarray(split[k])) for split in (train, test) for k in ("coarse", "class")]
    assert leak_floor(*tensors, 2, 10) == pytest.approx(0.2, abs=1e-6)  # the test split is balanced


def test_leak_floor_is_a_final_metric_and_proxy_keys_are_never_objectives():
    config = tiny_config(method="privacy_partitioning", params={})
    trial = Trial(config)
    trial.train_epoch()
    metrics, _ = trial.attack()
    assert 0 < metrics["privacy/leak_floor"] <= metrics["privacy/leak_acc"] + 0.2
    assert unknown_metric_reason("privacy/leak_floor", config) is None
    assert "not a privacy objective" in unknown_metric_reason("recon/proxy_ssim", config)


@pytest.mark.parametrize(
    ("method", "params", "proxy_keys"),
    [
        ("noisy_arl", {"sigma": 0.5, "lambda": 0.1}, {"privacy/proxy_leak_acc"}),
        ("privacy_partitioning", {"defenders": 2}, {"recon/proxy_ssim"}),
        ("adv_recon", {}, {"recon/proxy_ssim"}),
        ("deep_obfuscator", {}, {"privacy/proxy_leak_acc", "recon/proxy_ssim"}),
        ("disco", {"adversary": "input"}, {"recon/proxy_ssim"}),
    ],
)
def test_a_method_own_adversaries_are_evaluated_frozen_on_test(method, params, proxy_keys):
    trial = Trial(tiny_config(method=method, params=params))
    trial.train_epoch()
    own_leak = trial.method.proxy_leak
    own_decoders = trial.method.proxy_decoders()
    metrics, _ = trial.attack()
    assert {k for k in ("privacy/proxy_leak_acc", "recon/proxy_ssim") if k in metrics} == proxy_keys
    test = trial.data.test
    x = test.images.float() / 255
    with torch.no_grad():
        z = trial.method.release(x)
        if "privacy/proxy_leak_acc" in proxy_keys:
            expected = (own_leak(z).argmax(1) == test.private).float().mean().item()
            assert metrics["privacy/proxy_leak_acc"] == pytest.approx(expected, abs=1.5 / len(test))
        if "recon/proxy_ssim" in proxy_keys:
            from torchmetrics.functional.image import structural_similarity_index_measure as ssim

            best = max(ssim(d(z).clamp(0, 1), x, data_range=1.0, kernel_size=11).item() for d in own_decoders.values())
            assert metrics["recon/proxy_ssim"] == pytest.approx(best, abs=0.02)


def image_keys(split: TensorSplit) -> set[bytes]:
    return {image.numpy().tobytes() for image in split.images}


def test_disjoint_attacker_data_is_held_out_of_defense_training(monkeypatch):
    config = tiny_config(method="none", params={}, attacks__data="disjoint", attacks__disjoint_fraction=0.25)
    trial = Trial(config)
    defense, attacker = image_keys(trial.data.train), image_keys(trial.data.attacker)
    assert not defense & attacker and not attacker & image_keys(trial.data.val)
    n = 256 - round(256 * 0.1)  # tiny train split less validation
    assert len(trial.data.attacker) == round(n * 0.25) and len(trial.data.train) == n - round(n * 0.25)
    seen: set[bytes] = set()
    original = training.Attacker.loss

    def spy(self, z, targets):
        seen.update(image.mul(255).round().to(torch.uint8).contiguous().numpy().tobytes() for image in targets["image"])
        return original(self, z, targets)

    monkeypatch.setattr(training.Attacker, "loss", spy)
    trial.train_epoch()
    trial.attack()
    assert seen == attacker  # every attacker-share image, and nothing else


def test_a_deterministic_release_is_computed_once_per_split():
    trial = Trial(tiny_config(method="none", params={}))
    trial.method.eval()  # frozen, as the suite releases it
    calls: list[int] = []
    release = trial.method.release

    def counted(x):
        calls.append(len(x))
        return release(x)

    stored = ReleasedSplit(ReleaseParts(counted), trial.data.train, 64)
    assert sum(calls) == len(trial.data.train)
    epochs = [torch.cat([z for z, _ in stored.batches(torch.Generator().manual_seed(e))]) for e in range(2)]
    assert sum(calls) == len(trial.data.train)  # no release after the first pass
    assert not torch.equal(epochs[0], epochs[1])  # shuffled differently per epoch
    # the same z, batch for batch, as releasing each batch
    for z, targets in stored.batches(torch.Generator().manual_seed(3)):
        assert torch.allclose(z, release(targets["image"]), atol=1e-5)


@pytest.mark.parametrize(
    ("method", "params"),
    [("noisy_arl", {"sigma": 0.5}), ("random_pruning", {"pruning_ratio": 0.5}), ("input_noise", {"sigma": 0.3})],
)
def test_a_random_release_stores_its_features_once_and_draws_its_randomness_per_batch(method, params):
    """The stored client features, randomised per batch, are the release itself: from the
    same RNG state they give the z that `release(x)` gives, and each pass draws afresh."""
    trial = Trial(tiny_config(method=method, params=params))
    trial.method.eval()
    parts = trial.method.release_parts()
    assert parts.randomize is not None
    calls: list[int] = []

    def counted(x):
        calls.append(len(x))
        return parts.features(x)

    stored = ReleasedSplit(ReleaseParts(counted, parts.randomize), trial.data.train, 64)
    torch.manual_seed(11)
    cached = [(z, targets["image"]) for z, targets in stored.batches(torch.Generator().manual_seed(5))]
    assert sum(calls) == len(trial.data.train)  # features once per split, not once per batch
    torch.manual_seed(11)
    for z, images in cached:
        assert torch.allclose(z, trial.method.release(images), atol=1e-5)
    again = torch.cat([z for z, _ in stored.batches(torch.Generator().manual_seed(5))])
    assert not torch.allclose(again, torch.cat([z for z, _ in cached]))  # fresh randomness per pass
