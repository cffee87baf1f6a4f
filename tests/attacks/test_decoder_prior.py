"""The decoder-prior inversion: it starts from the decoder with the best validation SSIM, and
validation images choose between the grey start, the decoder's output and the pulled
inversions from it (the contract test covers the rest)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from test_whitebox import SHAPE, LinearClient, synthetic_test_split
from torch import nn

from trainables.attacks.attackers.decoder_prior import (
    DECODER,
    FROM_DECODER,
    GREY,
    DecoderPriorInversion,
)
from trainables.attacks.attackers.whitebox import WhiteboxInversion, reconstruct
from trainables.attacks.base import AttackContext, AttackData
from trainables.attacks.releases import ReleasedSplit
from trainables.config import AttackConfig, WhiteboxConfig

WHITEBOX = {"images": 4, "steps": 40, "tv": [0.0], "selection_images": 4, "selection_steps": 40}


class Inverse(nn.Module):
    """The exact inverse of a noiseless LinearClient: a perfect decoder."""

    def __init__(self, method: LinearClient):
        super().__init__()
        self.method = method

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.method.weight).view(len(z), *SHAPE)


class Blank(nn.Module):
    """A decoder that learned nothing: black images."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(z), *SHAPE)


def decoders(**scored: tuple[nn.Module, float]) -> dict:
    """Trained decoders as the suite hands them over: role, model and best validation score."""
    return {f"recon/{name}": SimpleNamespace(role="reconstruction", learner=SimpleNamespace(model=model, best_score=score))
            for name, (model, score) in scored.items()}


def attacked(cls, method, learned: dict) -> tuple[object, torch.Tensor]:
    test, selection = synthetic_test_split(), synthetic_test_split()
    data = AttackData(selection, selection, test, (2, 3))
    attack = cls(AttackContext(method, AttackConfig(whitebox=WHITEBOX), data.classes))
    attack.fit(data, learned)
    attack.test_records(data, ReleasedSplit(method.release_parts(), test, 8))
    return attack, test.images_at(slice(0, WHITEBOX["images"]))


def test_a_perfect_decoder_is_taken_as_it_is():
    method = LinearClient()
    attack, originals = attacked(DecoderPriorInversion, method, decoders(mirror=(Inverse(method), -0.1), fc=(Blank(), -0.5)))
    assert attack.start == DECODER
    assert torch.allclose(attack.reconstructions, originals, atol=1e-5)


def test_with_a_decoder_that_learned_nothing_it_is_the_white_box_attacker():
    method = LinearClient()
    attack, _ = attacked(DecoderPriorInversion, method, decoders(fc=(Blank(), -0.5)))
    plain, _ = attacked(WhiteboxInversion, method, {})
    assert (attack.start, attack.pull) == (GREY, 0.0)
    assert torch.allclose(attack.reconstructions, plain.reconstructions)


def test_the_decoder_is_chosen_on_the_validation_images_not_on_test():
    method = LinearClient()
    test, selection = synthetic_test_split(), synthetic_test_split()
    test.images = torch.zeros_like(test.images)  # on test the blank decoder would be perfect
    data = AttackData(selection, selection, test, (2, 3))
    attack = DecoderPriorInversion(AttackContext(method, AttackConfig(whitebox=WHITEBOX), data.classes))
    attack.fit(data, decoders(mirror=(Inverse(method), -0.5), fc=(Blank(), -0.1)))
    assert isinstance(attack.decoder, Inverse)  # validation says so, whatever the test images or the scores would say


def test_the_pull_keeps_an_inversion_from_the_decoder_near_its_output():
    method = LinearClient(sigma=0.5)
    images = synthetic_test_split().images_at(slice(0, 4))
    cfg = WhiteboxConfig(steps=40, tv=[0.0])
    tv, decoder = torch.zeros(len(images)), Blank()

    def distance_to_anchor(pull: float) -> float:
        torch.manual_seed(0)
        return reconstruct(method, images, cfg, tv, decoder, torch.full_like(tv, pull)).pow(2).mean().item()

    assert distance_to_anchor(100.0) < 0.2 * distance_to_anchor(0.0)


class Blurred(Inverse):
    """A decoder near the answer: the inverse, blurred."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(super().forward(z), 3, stride=1, padding=1)


class Brightened(Inverse):
    """A decoder with the right structure and the wrong brightness."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (super().forward(z) + 0.13).clamp(0, 1)


def test_the_decoder_is_chosen_by_ssim_the_metric_it_is_scored_on_not_by_mse():
    method = LinearClient()
    selection = synthetic_test_split()
    originals = selection.images_at(slice(0, WHITEBOX["selection_images"]))
    brightened, blurred = Brightened(method), Blurred(method)
    with torch.no_grad():
        outputs = {"brightened": brightened(method.release(originals)), "blurred": blurred(method.release(originals))}
    mse = {name: (output - originals).pow(2).mean().item() for name, output in outputs.items()}
    assert mse["blurred"] < mse["brightened"]  # the pair disagrees: MSE would take the blurred one
    data = AttackData(selection, selection, synthetic_test_split(), (2, 3))
    attack = DecoderPriorInversion(AttackContext(method, AttackConfig(whitebox=WHITEBOX), data.classes))
    attack.fit(data, decoders(mirror=(blurred, -0.1), fc=(brightened, -0.5)))
    assert attack.decoder is brightened


def test_an_inversion_from_a_near_decoder_beats_both_its_parents():
    method = LinearClient()
    attack, originals = attacked(DecoderPriorInversion, method, decoders(mirror=(Blurred(method), -0.1)))
    plain, _ = attacked(WhiteboxInversion, method, {})

    def error(reconstructions: torch.Tensor) -> float:
        return (reconstructions - originals).pow(2).mean().item()

    with torch.no_grad():
        alone = attack.decoder(method.release(originals)).clamp(0, 1)
    assert attack.start == FROM_DECODER
    assert error(attack.reconstructions) < min(error(plain.reconstructions), error(alone))
