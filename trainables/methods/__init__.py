"""Method registry: spec `method` key -> Method class. Adding a method is adding a line here."""

from __future__ import annotations

from trainables.errors import InputError
from trainables.methods.base import Method, MethodContext
from trainables.methods.noise_baselines import ActivationNoise, InputNoise
from trainables.methods.noisy_arl import NoisyARL
from trainables.methods.none import NoDefense
from trainables.methods.random_pruning import RandomPruning

METHODS: dict[str, type[Method]] = {
    "none": NoDefense,
    "noisy_arl": NoisyARL,
    "activation_noise": ActivationNoise,
    "input_noise": InputNoise,
    "random_pruning": RandomPruning,
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise InputError(f"method: unknown method {name!r}; choose one of {sorted(METHODS)}.")
    return METHODS[name]


__all__ = ["METHODS", "Method", "MethodContext", "method_class"]
