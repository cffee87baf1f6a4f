"""Mechanisms of `deep_obfuscator` (pre-training, then a cycle of defend / attack / classifier
stages against a reconstructor and an attribute adversary). Synthetic 16x16 images keep
them fast."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainables.methods.ssim_losses import ms_ssim
from trainables.methods.updates import keeping_buffers

from .helpers import IMAGE, changed_entries, close, make, param_names, snapshot
from .helpers import loss_grads as grads
from .helpers import pixel_batch as batch

DO_MODULES = ("obfuscator", "classifier", "adversary_classifier", "reconstructor")



EXPECTED_CHANGE = {
    "pretrain": set(DO_MODULES),
    "defend_reconstruction": {"obfuscator"},
    "defend_leakage": {"obfuscator"},
    "attack": {"reconstructor", "adversary_classifier"},
    "classifier": {"classifier"},
}



def _do(params: dict | None = None, lr: float = 1e-3, seed: int = 0):
    return make("deep_obfuscator", params, lr=lr, seed=seed).train()



def _force_stage(method, stage: str) -> None:
    if stage != "pretrain":
        method.start_phase("game")
        method.game_steps.fill_(["defend_reconstruction", "defend_leakage", "attack", "classifier"].index(stage))
    assert method.stage() == stage



def _changed_modules(method, before: dict[str, dict[str, torch.Tensor]]) -> set[str]:
    return {name for name in DO_MODULES if changed_entries(getattr(method, name), before[name])}



@pytest.mark.parametrize("stage", list(EXPECTED_CHANGE))
def test_deep_obfuscator_each_stage_updates_only_its_own_networks(stage):
    method = _do()
    _force_stage(method, stage)
    before = {name: snapshot(getattr(method, name)) for name in DO_MODULES}
    noise = method.noise_image.clone()
    count = int(method.game_steps)
    method.train_step(*batch())
    for name in DO_MODULES:
        module = getattr(method, name)
        changed = changed_entries(module, before[name])
        if name in EXPECTED_CHANGE[stage]:
            assert changed & param_names(module), name
            assert changed - param_names(module), name  # trained in train mode: BN statistics move
        else:
            assert changed == set(), name  # parameters and batch-norm statistics as they were
            assert all(p.grad is None for p in module.parameters()), name
    assert torch.equal(method.noise_image, noise)
    assert int(method.game_steps) == count + (stage != "pretrain")  # pre-training steps are not game steps



@pytest.mark.parametrize("stage", ["pretrain", "defend_reconstruction", "defend_leakage"])
def test_deep_obfuscator_obfuscator_gradient_is_the_stage_objective(stage):
    method = _do({"lambda1": 2.0, "lambda2": 3.0}, lr=0.0)
    _force_stage(method, stage)
    x, y, s = batch()
    method.train_step(x, y, s)
    got = [p.grad for p in method.obfuscator.parameters()]
    # ms_ssim itself is checked against torchmetrics in test_ssim_losses.py; at a random initialisation the
    # relu-clipped MS-SSIM terms sit near 0, where x ** beta amplifies float32 rounding, so
    # torchmetrics' own gradient would only agree to ~1e-2 here
    with keeping_buffers(*(getattr(method, name) for name in DO_MODULES)):
        z = method.obfuscator(x)
        task = F.cross_entropy(method.classifier(z), y)
        recon = method.reconstructor(z)
        ar1 = 1 - ms_ssim(recon, x)
        ar2 = 1 - ms_ssim(recon, method.noise_image.expand_as(recon))
        leak = F.cross_entropy(method.adversary_classifier(z), s)
        objectives = {
            "pretrain": task,  # no privacy term
            "defend_reconstruction": task + 3.0 * (ar2 - ar1),  # Eq. 9
            "defend_leakage": task - 2.0 * leak,  # Eq. 5
        }
        expected = {name: grads(loss, method.obfuscator) for name, loss in objectives.items()}
    assert close(got, expected[stage], atol=1e-5)
    assert all(not close(got, expected[other], atol=1e-5) for other in expected if other != stage)



def test_deep_obfuscator_cycles_stages_0_1_2_3_after_pretraining_and_never_touches_the_noise_image():
    method = _do()
    assert method.phases == ("pretrain", "game") and method.stage() == "pretrain"  # before any start_phase
    noise = method.noise_image.clone()
    expected = ["pretrain"] * 2 + ["defend_reconstruction", "defend_leakage", "attack", "classifier"] * 2
    seen, changed = [], []
    for i in range(10):
        if i == 2:  # the trainer's convergence rule ended pre-training
            method.start_phase("game")
        seen.append(method.stage())
        before = {name: snapshot(getattr(method, name)) for name in DO_MODULES}
        method.train_step(*batch(seed=i))
        changed.append(_changed_modules(method, before))
        assert torch.equal(method.noise_image, noise)
    assert seen == expected
    assert changed == [EXPECTED_CHANGE[stage] for stage in expected]



def test_deep_obfuscator_noise_image_and_game_steps_survive_a_state_dict_round_trip():
    method = _do()
    noise = method.noise_image
    assert noise.shape == (1, *IMAGE) and noise.min() >= 0 and noise.max() <= 1
    assert noise.mean().item() == pytest.approx(0.5, abs=0.05) and noise.std().item() == pytest.approx(0.25, abs=0.05)
    method.train_step(*batch(seed=0))  # 1 pre-training step
    method.start_phase("game")
    for i in range(1, 3):
        method.train_step(*batch(seed=i))
    state = method.state_dict()
    assert int(state["game_steps"]) == 2 and torch.equal(state["noise_image"], noise)

    resumed = _do(seed=1)
    assert not torch.equal(resumed.noise_image, noise)  # drawn from the trial's seeded RNG
    resumed.load_state_dict(state)
    resumed.start_phase("game")  # the trainer announces the current phase on a resume
    assert torch.equal(resumed.noise_image, noise) and int(resumed.game_steps) == 2
    assert resumed.stage() == method.stage() == "attack"  # 2 mod 4
    before = {name: snapshot(getattr(resumed, name)) for name in DO_MODULES}
    resumed.train_step(*batch(seed=3))
    assert _changed_modules(resumed, before) == EXPECTED_CHANGE["attack"]
    assert resumed.stage() == "classifier" and torch.equal(resumed.noise_image, noise)
