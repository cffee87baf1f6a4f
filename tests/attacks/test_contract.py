"""The contract every registered attacker passes (`trainables.attacks.registry.ATTACKERS`,
the white-box inversion included), as every method passes `tests/methods/test_contract.py`:
an attacker gets these checks by being registered, so a new attacker is checked without
writing a test. Tiny random data on a frozen `none` client, at splits of the small CNN on a
colour and a grey image."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from pydantic import BaseModel

from trainables.attacks import registered
from trainables.attacks.base import ROLE_TARGETS, Attack, AttackContext, AttackData, LearnedAttack
from trainables.attacks.releases import ReleasedSplit
from trainables.attacks.suite import run_attack_suite
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.methods import METHODS, MethodContext
from trainables.models import SplitArchitecture
from trainables.schema import THREAT_MODELS, threat_key

TASK_CLASSES, PRIVATE_CLASSES, BATCH = 2, 3, 8
ARCHITECTURES = [("2", (3, 16, 16)), ("1", (1, 28, 28))]
ATTACKERS = sorted(registered())
# a budget of seconds for every attacker: one learned epoch, a 4-image 5-step white-box
TINY = {"epochs": 1, "batch_size": BATCH, "bootstrap": 100, "gallery": 2}


def tiny_attacks(**updates) -> AttackConfig:
    raw = copy.deepcopy(TINY)
    for cls in registered().values():
        cls.shrink_for_smoke(raw)
    return AttackConfig.model_validate({**raw, **updates})


def frozen_none(split: str, shape: tuple[int, int, int]):
    torch.manual_seed(0)
    arch = SplitArchitecture("small_cnn", split, shape, {})
    method = METHODS["none"](MethodContext(arch, TASK_CLASSES, PRIVATE_CLASSES, 1e-3), METHODS["none"].Params())
    method.eval().requires_grad_(False)
    return method


def split_of(n: int, shape: tuple[int, int, int], seed: int) -> TensorSplit:
    generator = torch.Generator().manual_seed(seed)
    return TensorSplit(torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8),
                       torch.randint(TASK_CLASSES, (n,), generator=generator),
                       torch.randint(PRIVATE_CLASSES, (n,), generator=generator))


def data_for(shape: tuple[int, int, int]) -> AttackData:
    return AttackData(split_of(32, shape, 1), split_of(16, shape, 2), split_of(12, shape, 3), (TASK_CLASSES, PRIVATE_CLASSES))


class Untouchable:
    """A test split an attacker must not read while it fits."""

    def __getattr__(self, name):
        raise AssertionError(f"the attacker read the test split's `{name}` while fitting")

    def __len__(self):
        raise AssertionError("the attacker read the test split while fitting")


@pytest.mark.parametrize("name", ATTACKERS)
def test_an_attacker_declares_its_role_and_threat_model_and_is_registered_under_its_name(name):
    cls = registered()[name]
    assert issubclass(cls, Attack) and cls.name == name
    assert cls.role in ROLE_TARGETS, f"{name}: role {cls.role!r}"
    assert cls.threat in THREAT_MODELS, f"{name}: threat {cls.threat!r}"
    assert isinstance(cls.in_default_suite, bool)
    if issubclass(cls, LearnedAttack):
        assert cls.peak_lr > 0 and (cls.batch_size is None or cls.batch_size >= 1), name
        assert 0 <= cls.ema < 1 and isinstance(cls.stopping_scale, int) and cls.stopping_scale >= 1, name


@pytest.mark.parametrize("name", ATTACKERS)
def test_its_screening_budget_never_grows_and_is_the_same_however_often_it_is_applied(name):
    cls = registered()[name]
    attacks = AttackConfig()
    assert attacks.model_copy(update=cls.screening_budget(attacks, 1.0)) == attacks  # the whole budget is the budget
    updates = cls.screening_budget(attacks, 0.1)
    assert set(updates) <= set(AttackConfig.model_fields), f"{name}: updates unknown settings {set(updates) - set(AttackConfig.model_fields)}"
    screened = attacks.model_copy(update=updates)
    for field in updates:
        before, after = getattr(attacks, field), getattr(screened, field)
        pairs = ([(before.model_dump()[k], v) for k, v in after.model_dump().items()] if isinstance(after, BaseModel)
                 else [(before, after)])
        assert all(1 <= a <= b for b, a in pairs if isinstance(a, int) and not isinstance(a, bool) and a != b), (name, field)
        assert after != before, f"{name}: screening at a tenth left {field} as it was"
    assert screened.model_copy(update=cls.screening_budget(attacks, 0.1)) == screened


@pytest.mark.parametrize("name", ATTACKERS)
def test_its_smoke_shrink_gives_valid_settings_and_is_the_same_however_often_it_is_applied(name):
    cls = registered()[name]
    once: dict = {}
    cls.shrink_for_smoke(once)
    twice = copy.deepcopy(once)
    cls.shrink_for_smoke(twice)
    assert once == twice
    AttackConfig.model_validate(once)  # raises on a setting the config does not know


@pytest.mark.parametrize(("split", "shape"), ARCHITECTURES)
@pytest.mark.parametrize("name", ATTACKERS)
def test_it_fits_without_the_test_split_and_records_every_test_example(name, split, shape):
    cls = registered()[name]
    method = frozen_none(split, shape)
    data = data_for(shape)
    attack = cls(AttackContext(method, tiny_attacks(), data.classes))
    if attack.learner is not None:  # the suite's shared loop trains it; here a few steps on one batch
        z, targets = next(ReleasedSplit(method.release_parts(), data.attacker, BATCH).batches())
        out = attack.learner.net.eval()(z)
        target = ROLE_TARGETS[cls.role]
        assert tuple(out.shape) == ((BATCH, PRIVATE_CLASSES) if target == "private" else tuple(targets["image"].shape)), name
        before = attack.learner.loss(z, targets).item()
        attack.learner.net.train()
        for _ in range(30):
            attack.learner.step(z, targets, warmup=1.0)
        with torch.no_grad():
            attack.learner.model.eval()
            after = attack.learner.loss(z, targets).item()
        assert after < before, f"{name}: 30 steps on one batch did not lower its loss ({before:.4f} -> {after:.4f})"
    ctx = attack.ctx
    learned = {other.record_name(): other(ctx) for other in registered().values() if issubclass(other, LearnedAttack)}
    attack.fit(AttackData(data.attacker, data.selection, Untouchable(), data.classes), learned)
    test = ReleasedSplit(method.release_parts(), data.test, BATCH)
    records = attack.test_records(data, test)
    if cls.role == "leakage":
        assert records.hits is not None and records.hits.dtype == torch.bool and records.hits.shape == (len(data.test),)
        return
    assert records.similarity is not None
    ssim = records.similarity.statistics()["ssim"]
    assert 1 <= ssim.size <= len(data.test) and all(-1 <= v <= 1 for v in ssim.scores.tolist())
    images = data.test.images_at(slice(0, 2))
    gallery = attack.gallery(images)
    assert gallery.shape == images.shape and 0 <= gallery.min() and gallery.max() <= 1


@pytest.mark.parametrize("name", ATTACKERS)
def test_the_suite_reports_it_per_attacker_and_in_its_threat_model(name):
    cls = registered()[name]
    other_role = "reconstruction" if cls.role == "leakage" else "leakage"
    partner = next(n for n, c in sorted(registered().items()) if c.role == other_role and issubclass(c, LearnedAttack))
    cfg = tiny_attacks(**{cls.role: [name], other_role: [partner]})
    shape = ARCHITECTURES[0][1]
    report = run_attack_suite(frozen_none("2", shape), data_for(shape), cfg, seed=0)
    metric = "privacy/leak_acc" if cls.role == "leakage" else "recon/ssim"
    own = report.metrics[f"{metric}/{name}"]
    assert math.isfinite(own)
    assert report.metrics[threat_key(metric, cls.threat)] == own == report.metrics[metric]  # the only one of its role
    assert report.metrics[f"{threat_key(metric, cls.threat)}:ci95_lo"] <= own <= report.metrics[f"{threat_key(metric, cls.threat)}:ci95_hi"]
