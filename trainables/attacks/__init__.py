"""The attack suite: the selected attackers (`registry.selected`: a spec's lists, else its
`attacks.suite`; one module each in `trainables.attacks.attackers`, the protocol in
`trainables.attacks.base`) on a frozen release."""

from trainables.attacks.base import Attack, LearnedAttack
from trainables.attacks.registry import register, registered
from trainables.attacks.suite import AttackReport, run_attack_suite

__all__ = ["Attack", "AttackReport", "LearnedAttack", "register", "registered", "run_attack_suite"]
