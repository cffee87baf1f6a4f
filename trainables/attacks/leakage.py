"""Leakage attackers: networks trained on released z to predict the private attribute.

- `server_arch`: the server architecture (rest of the split backbone) with a private head,
  freshly initialised, the attacker who knows the service provider's models.
- `mlp`: z average-pooled to a 2x2 grid, then a two-hidden-layer MLP (256 wide).

Each entry carries its peak Adam learning rate (`LearnedAttacker.peak_lr`), measured on the
quickstart's released features (`none`, small_cnn split 2, 9k train images, batch 256, test
accuracy per epoch over 12 epochs at a constant rate after a one-epoch warm-up):
server_arch at 1e-3 / 3e-3 / 1e-2 peaked at .861 / .868 / .879 but swung by 2-4 points
between epochs at every rate; 3e-3 reached .83 by epoch 3 (1e-2: .835 only at epoch 3, .664
after the first). The plateau decay of `trainables.attacks.training` then removes the swings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

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


Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class LearnedAttacker(Generic[Builder]):
    """A registry entry: how to build the attacker, the peak learning rate it trains at and,
    where measured to help, a smaller batch: the attacker then takes one step per chunk of
    `batch_size` of each released batch (`attacks.batch_size`), so every attacker still sees
    the same released z; and, where measured to help, the decay `ema` of the moving average
    of its weights that is scored and evaluated, and a `stopping_scale` that multiplies the
    suite's patience, decay patience and epoch cap for this attacker
    (`trainables.attacks.training`)."""

    build: Builder
    peak_lr: float
    batch_size: int | None = None
    ema: float = 0.0
    stopping_scale: int = 1


LEAKAGE_EMA = 0.97
LEAKAGE_STOPPING_SCALE = 2
LEAKAGE_ATTACKERS: dict[str, LearnedAttacker[Callable[[SplitArchitecture, int], nn.Module]]] = {
    "server_arch": LearnedAttacker(server_arch, 3e-3, ema=LEAKAGE_EMA, stopping_scale=LEAKAGE_STOPPING_SCALE),
    "mlp": LearnedAttacker(pooled_mlp, 3e-3, ema=LEAKAGE_EMA, stopping_scale=LEAKAGE_STOPPING_SCALE),
}
# The retrained utility model: the server architecture with the task head, on its own weights
# and the suite's stopping rule (averaged, it lost .008 task accuracy in 2 of 3 seeds:
# `trainables.attacks.training`).
RETRAINED_UTILITY = replace(LEAKAGE_ATTACKERS["server_arch"], ema=0.0, stopping_scale=1)

