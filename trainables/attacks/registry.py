"""Every attacker by name: `ATTACKERS`, filled by `@register("<name>")` on the `Attack`
subclasses of the modules in `trainables.attacks.attackers`, each imported once on first use.
Adding an attacker is adding a module there (docs/write-your-own-attack.md): no list to edit,
no spec to change (a spec that lists no attackers takes its suite, `attacks.suite`)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable

from trainables.attacks import attackers
from trainables.attacks.base import Attack
from trainables.config import AttackConfig
from trainables.errors import InputError

ATTACKERS: dict[str, type[Attack]] = {}


def register(name: str) -> Callable[[type[Attack]], type[Attack]]:
    def add(cls: type[Attack]) -> type[Attack]:
        if name in ATTACKERS and ATTACKERS[name] is not cls:
            raise ValueError(f"attacker {name!r} is registered twice: {ATTACKERS[name].__module__} and {cls.__module__}")
        cls.name = name
        ATTACKERS[name] = cls
        return cls

    return add


@functools.cache
def _import_attacker_modules() -> None:
    for module in pkgutil.iter_modules(attackers.__path__):
        importlib.import_module(f"{attackers.__name__}.{module.name}")


def registered() -> dict[str, type[Attack]]:
    """Every attacker (importing the modules of `trainables.attacks.attackers` the first time)."""
    _import_attacker_modules()
    return ATTACKERS


def suite_members(suite: str, role: str) -> list[str]:
    """The attackers of `role` that `attacks.suite` picks, by name: every one that joins the
    default suite, or every registered one of a threat model (listed or not by default)."""
    return sorted(name for name, cls in registered().items()
                  if cls.role == role and (cls.threat == suite if suite != "default" else cls.in_default_suite))


def selected(cfg: AttackConfig) -> dict[str, type[Attack]]:
    """The attackers a config runs, leakage first, each role by name (so a listed order and
    the suite's give the same trial): the listed ones, else the suite's."""
    check_attack_names(cfg)
    names = [*sorted(cfg.leakage or suite_members(cfg.suite, "leakage")),
             *sorted(cfg.reconstruction or suite_members(cfg.suite, "reconstruction"))]
    return {name: registered()[name] for name in names}


def check_attack_names(cfg: AttackConfig) -> None:
    known = registered()
    for role in ("leakage", "reconstruction"):
        of_role = sorted(name for name, cls in known.items() if cls.role == role)
        listed = getattr(cfg, role)
        if listed is None:
            if not suite_members(cfg.suite, role):
                raise InputError(
                    f"attacks.suite: no {role} attacker assumes the {cfg.suite} threat model; list the {role} attackers "
                    f"in attacks.{role} (choose from {of_role}) or pick another suite."
                )
            continue
        unknown = sorted(set(listed) - set(of_role))
        if unknown:
            raise InputError(f"attacks.{role}: unknown attacker(s) {unknown}; choose from {of_role}.")
