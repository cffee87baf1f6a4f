"""The attack suite: leakage attackers and reconstruction decoders trained on released z."""

from trainables.attacks.leakage import LEAKAGE_ATTACKERS
from trainables.attacks.suite import AttackReport, run_attack_suite
from trainables.models.decoders import DECODERS

__all__ = ["DECODERS", "LEAKAGE_ATTACKERS", "AttackReport", "run_attack_suite"]
