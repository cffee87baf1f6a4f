"""Method registry: spec `method` key -> Method class. Adding a method is adding a line here."""

from __future__ import annotations

from trainables.errors import InputError
from trainables.methods.adv_recon import AdvRecon
from trainables.methods.base import Method, MethodContext
from trainables.methods.deep_obfuscator import DeepObfuscator
from trainables.methods.disco import Disco
from trainables.methods.dp_baselines import DPLaplace, DPPixelation
from trainables.methods.maxent import MaxEnt
from trainables.methods.noise_baselines import ActivationNoise, InputNoise
from trainables.methods.noisy_arl import NoisyARL
from trainables.methods.none import NoDefense
from trainables.methods.privacy_partitioning import PrivacyPartitioning
from trainables.methods.random_pruning import RandomPruning

METHODS: dict[str, type[Method]] = {
    "none": NoDefense,
    "noisy_arl": NoisyARL,
    "activation_noise": ActivationNoise,
    "input_noise": InputNoise,
    "random_pruning": RandomPruning,
    "disco": Disco,
    "maxent": MaxEnt,
    "dp_laplace": DPLaplace,
    "dp_pixelation": DPPixelation,
    "privacy_partitioning": PrivacyPartitioning,
    "adv_recon": AdvRecon,
    "deep_obfuscator": DeepObfuscator,
}


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise InputError(f"method: unknown method {name!r}; choose one of {sorted(METHODS)}.")
    return METHODS[name]


__all__ = ["METHODS", "Method", "MethodContext", "method_class"]
