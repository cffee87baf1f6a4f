"""The contract every registered learned attacker passes (the leakage classifiers of
`LEAKAGE_ATTACKERS`, the decoders of `DECODERS` and the retrained utility model), as every
method passes `tests/methods/test_contract.py`: an attacker gets these checks by being in a
registry. Tiny random data, at every split of the small CNN and on a colour and a grey image."""

from __future__ import annotations

import pytest
import torch

from trainables.attacks import training
from trainables.attacks.decoders import DECODERS
from trainables.attacks.leakage import LEAKAGE_ATTACKERS, RETRAINED_UTILITY, LearnedAttacker
from trainables.models import SplitArchitecture

CLASSES, BATCH = 3, 8
ARCHITECTURES = [("2", (3, 16, 16)), ("1", (1, 28, 28)), ("3", (3, 32, 32))]
# (registry name, entry, target): every learned attacker the suite can build
REGISTERED = [
    *[(f"leak/{name}", entry, "private") for name, entry in LEAKAGE_ATTACKERS.items()],
    *[(f"recon/{name}", entry, "image") for name, entry in DECODERS.items()],
    ("utility/retrained", RETRAINED_UTILITY, "task"),
]


def built(entry: LearnedAttacker, target: str, arch: SplitArchitecture) -> torch.nn.Module:
    return entry.build(arch.z_shape, arch.input_shape) if target == "image" else entry.build(arch, CLASSES)


def released(arch: SplitArchitecture, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(BATCH, *arch.input_shape, generator=generator)
    with torch.no_grad():
        z = arch.client().eval()(images)
    labels = torch.randint(CLASSES, (BATCH,), generator=generator)
    return z, {"image": images, "task": labels, "private": labels}


@pytest.mark.parametrize(("name", "entry", "target"), REGISTERED, ids=[name for name, *_ in REGISTERED])
def test_a_registered_attacker_declares_a_usable_budget(name, entry, target):
    assert entry.peak_lr > 0, name
    assert entry.batch_size is None or entry.batch_size >= 1, name
    assert 0 <= entry.ema < 1, name
    assert isinstance(entry.stopping_scale, int) and entry.stopping_scale >= 1, name


@pytest.mark.parametrize(("split", "shape"), ARCHITECTURES)
@pytest.mark.parametrize(("name", "entry", "target"), REGISTERED, ids=[name for name, *_ in REGISTERED])
def test_a_registered_attacker_maps_a_release_to_its_target_and_learns_from_it(name, entry, target, split, shape):
    torch.manual_seed(0)
    arch = SplitArchitecture("small_cnn", split, shape, {})
    attacker = training.Attacker(built(entry, target, arch), target, entry.peak_lr, entry.batch_size, entry.ema, entry.stopping_scale)
    z, targets = released(arch, seed=1)
    out = attacker.net.eval()(z)
    expected = targets["image"].shape if target == "image" else (BATCH, CLASSES)
    assert tuple(out.shape) == tuple(expected), name
    with torch.no_grad():
        before = loss_of(attacker.net.eval(), target, z, targets)
    attacker.net.train()
    for _ in range(30):
        attacker.step(z, targets, warmup=1.0)
    attacker.model.eval()  # what is scored and evaluated: the weights' moving average where it keeps one
    with torch.no_grad():
        after = loss_of(attacker.model, target, z, targets)
    assert after < before, f"{name}: 30 steps on one batch did not lower its loss ({before:.4f} -> {after:.4f})"


def loss_of(model: torch.nn.Module, target: str, z: torch.Tensor, targets: dict[str, torch.Tensor]) -> float:
    out = model(z)
    if target == "image":
        return torch.nn.functional.mse_loss(out, targets["image"]).item()
    return torch.nn.functional.cross_entropy(out, targets[target]).item()
