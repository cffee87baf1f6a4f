"""The contract every registered method passes (in the style of Opacus' shared per-layer
tests): a method gets all of these by being in `METHODS`, so a new defense is checked
without writing a test. Tiny random data; networks randomly initialised. adv_recon's
perceptual term needs VGG16's ImageNet weights, which cannot be downloaded here: it runs
with that term off (lambda2 = 0), which its own tests cover with a random VGG16."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
import yaml

from sweeps.spec import load_spec
from trainables.data.batches import TensorSplit
from trainables.methods import METHODS, MethodContext
from trainables.models import SplitArchitecture

REPO = Path(__file__).resolve().parents[2]
SHAPE = (3, 16, 16)
TASK_CLASSES, PRIVATE_CLASSES, BATCH = 2, 3, 16
STEPS_PER_EPOCH = 3
PARAMS = {"adv_recon": {"lambda2": 0.0}}
# The baselines without a paper setting of their own are swept in compare_fashion_mnist.yaml.
WITHOUT_OWN_SPEC = {"none", "activation_noise", "input_noise", "random_pruning"}


def build(name: str, seed: int):
    torch.manual_seed(seed)
    cls = METHODS[name]
    arch = SplitArchitecture("small_cnn", "2", SHAPE, {})
    method = cls(MethodContext(arch, TASK_CLASSES, PRIVATE_CLASSES, 1e-3), cls.Params(**PARAMS.get(name, {})))
    method.start_training(train_split(), BATCH)
    return method


def train_split() -> TensorSplit:
    """What the trainer hands over before the first step: the defense's train split."""
    generator = torch.Generator().manual_seed(77)
    n = BATCH * STEPS_PER_EPOCH
    unlabelled = torch.zeros(n, dtype=torch.long)
    return TensorSplit(torch.randint(0, 256, (n, *SHAPE), generator=generator, dtype=torch.uint8), unlabelled, unlabelled)


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(BATCH, *SHAPE, generator=generator),
            torch.randint(TASK_CLASSES, (BATCH,), generator=generator),
            torch.randint(PRIVATE_CLASSES, (BATCH,), generator=generator))


def state(method) -> dict:
    """As a checkpoint holds it: a copy (an optimiser's state_dict shares its live moment
    tensors, and loading it into another optimiser would share them again)."""
    saved = io.BytesIO()
    torch.save({"method": method.state_dict(), "optimizers": {k: o.state_dict() for k, o in method.optimizers.items()}}, saved)
    saved.seek(0)
    return torch.load(saved, weights_only=True)


def load(method, saved: dict) -> None:
    method.load_state_dict(saved["method"])
    for name, optimizer in method.optimizers.items():
        optimizer.load_state_dict(saved["optimizers"][name])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_train_step_gives_finite_losses_and_release_and_serve_have_their_shapes(name):
    method = build(name, 0).train()
    for step in range(2):
        losses = method.train_step(*batch(step))
        assert "task_loss" in losses
        assert all(isinstance(v, float) and math.isfinite(v) for v in losses.values()), losses
    method.eval()
    x = batch(9)[0]
    with torch.no_grad():
        z = method.release(x)
        logits = method.serve(z)
    assert tuple(z.shape) == (BATCH, *method.ctx.arch.z_shape)
    assert tuple(logits.shape) == (BATCH, TASK_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_state_dict_round_trip_reproduces_the_next_step_and_release_exactly(name):
    """What a resumed trial relies on (it resumes at an epoch start, from the checkpoint of
    the epoch before): everything that steers the next step (weights, optimiser moments,
    step counters) is in the state dict, or follows from `start_phase`, which the trainer
    calls again on a resume (here in the last phase: DISCO's filter, DeepObfuscator's game)."""
    trained = build(name, 0).train()
    for step in range(STEPS_PER_EPOCH):
        trained.train_step(*batch(step))
    saved = state(trained)
    resumed = build(name, 1).train()  # other initial weights: all must come from the checkpoint
    load(resumed, saved)
    outcomes = []
    for method in (trained, resumed):
        method.start_phase(method.phases[-1])
        torch.manual_seed(123)
        losses = method.train_step(*batch(50))
        method.eval()
        with torch.no_grad():
            released = method.release(batch(51)[0])
        method.train()
        outcomes.append((losses, released))
    assert outcomes[0][0] == outcomes[1][0]
    assert torch.equal(outcomes[0][1], outcomes[1][1])


@pytest.mark.parametrize("name", sorted(set(METHODS) - WITHOUT_OWN_SPEC))
def test_a_paper_method_ships_its_search_space_and_a_valid_spec(name):
    space = REPO / "search_spaces" / f"{name}.yaml"
    assert space.is_file(), f"{space} missing"
    assert isinstance(yaml.safe_load(space.read_text()), dict)
    spec = load_spec(REPO / "sweeps" / f"{name}.yaml")
    assert spec.method == name
    assert spec.space().items(), "the spec sweeps nothing"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_releases_where_its_class_says(name):
    """`releases = "image"`: split "0" whatever model.split says, z is the image; else the
    features at model.split."""
    method = build(name, 0)
    if METHODS[name].releases == "image":
        assert method.ctx.arch.split == "0" and tuple(method.ctx.arch.z_shape) == SHAPE
    else:
        assert method.ctx.arch.split == "2"
