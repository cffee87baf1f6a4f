"""The attack suite: every registered attacker (`registry.ATTACKERS`, one module each in
`trainables.attacks.attackers`, the protocol in `trainables.attacks.base`) on a frozen release."""

from trainables.attacks.base import Attack, LearnedAttack
from trainables.attacks.registry import ATTACKERS, register, registered
from trainables.attacks.suite import AttackReport, run_attack_suite

__all__ = ["ATTACKERS", "Attack", "AttackReport", "LearnedAttack", "register", "registered", "run_attack_suite"]
