"""Which attackers a config runs, and that the choice never moves another attacker's numbers:
the suites, the order, each attacker's own seed, and the screening budget of the model every
suite trains."""

from __future__ import annotations

import pytest
import torch

import trainables.screening as screening
from attacks.test_contract import data_for, frozen_none, tiny_attacks
from trainables.attacks.attackers.whitebox import WhiteboxInversion
from trainables.attacks.base import AttackContext
from trainables.attacks.registry import selected
from trainables.attacks.suite import build_attacks
from trainables.config import AttackConfig
from trainables.errors import InputError
from trainables.screening import screening_budget


def test_a_threat_model_suite_runs_every_attacker_of_that_threat_model():
    assert list(selected(AttackConfig(suite="white_box", leakage=["mlp"]))) == ["mlp", "decoder_prior", "whitebox"]
    assert list(selected(AttackConfig(suite="architecture_only", leakage=["mlp"]))) == ["mlp", "unsplit"]
    assert list(selected(AttackConfig(suite="no_query", leakage=["mlp"]))) == ["mlp", "fora"]
    assert list(selected(AttackConfig(suite="query"))) == ["mlp", "server_arch", "fc", "mirror"]
    with pytest.raises(InputError, match="no leakage attacker assumes the white_box threat model.*attacks.leakage"):
        selected(AttackConfig(suite="white_box"))


def test_a_listed_order_and_the_suites_give_the_same_attackers_in_the_same_order():
    listed = AttackConfig(leakage=["server_arch", "mlp"], reconstruction=["whitebox", "mirror", "fc"])
    assert list(selected(listed)) == list(selected(AttackConfig()))


def test_listing_one_more_attacker_changes_no_other_attackers_initial_weights():
    shape = (3, 16, 16)
    method, data = frozen_none("2", shape), data_for(shape)

    def mirror_weights(reconstruction: list[str]) -> dict[str, torch.Tensor]:
        torch.manual_seed(123)  # whatever the global stream holds
        _, learners = build_attacks(AttackContext(method, tiny_attacks(reconstruction=reconstruction), data.classes, seed=0))
        return learners["recon/mirror"].net.state_dict()

    alone, beside_fc = mirror_weights(["mirror"]), mirror_weights(["fc", "mirror"])
    assert all(torch.equal(alone[key], beside_fc[key]) for key in alone)
    torch.manual_seed(0)
    _, learners = build_attacks(AttackContext(method, tiny_attacks(reconstruction=["mirror"]), data.classes, seed=1))
    assert not all(torch.equal(alone[key], value) for key, value in learners["recon/mirror"].net.state_dict().items())  # the trial's seed does


def test_screening_scales_the_retrained_utility_models_budget_whatever_the_attackers(monkeypatch):
    attacks = AttackConfig(epochs=30, whitebox={"steps": 100})
    monkeypatch.setattr(screening, "selected", lambda cfg: {"whitebox": WhiteboxInversion})  # no learned attacker at all
    screened = screening_budget(attacks, 0.2)
    assert (screened.epochs, screened.whitebox.steps) == (6, 20)
