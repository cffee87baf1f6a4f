"""Leakage attackers: networks trained on released z to predict the private attribute.

- `server_arch`: the server architecture (rest of the split backbone) with a private head,
  freshly initialised, the attacker who knows the service provider's models.
- `mlp`: z average-pooled to a 2x2 grid, then a two-hidden-layer MLP (256 wide).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainables.models import SplitArchitecture

MLP_GRID = 2
MLP_HIDDEN = 256


def server_arch(arch: SplitArchitecture, classes: int) -> nn.Module:
    return arch.server(classes)


def pooled_mlp(arch: SplitArchitecture, classes: int) -> nn.Module:
    channels = arch.z_shape[0]
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(MLP_GRID),
        nn.Flatten(),
        nn.Linear(channels * MLP_GRID**2, MLP_HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(MLP_HIDDEN, classes),
    )


LEAKAGE_ATTACKERS: dict[str, Callable[[SplitArchitecture, int], nn.Module]] = {
    "server_arch": server_arch,
    "mlp": pooled_mlp,
}

