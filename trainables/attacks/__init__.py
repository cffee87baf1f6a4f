"""The attack suite: leakage attackers and reconstruction decoders trained on released z."""

from trainables.attacks.decoders import DECODERS
from trainables.attacks.leakage import LEAKAGE_ATTACKERS
from trainables.attacks.suite import AttackReport, run_attack_suite

__all__ = ["DECODERS", "LEAKAGE_ATTACKERS", "AttackReport", "run_attack_suite"]
