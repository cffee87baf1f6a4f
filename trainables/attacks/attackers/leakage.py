"""Leakage attackers: networks trained on released z to predict the private attribute, by an
attacker who can release its own images through the deployed client (threat model `query`).

- `server_arch`: the server architecture (rest of the split backbone) with a private head,
  freshly initialised, the attacker who knows the service provider's models.
- `mlp`: z average-pooled to a 2x2 grid, then a two-hidden-layer MLP (256 wide).

Each carries its peak Adam learning rate (`LearnedAttack.peak_lr`), measured on the
quickstart's released features (`none`, small_cnn split 2, 9k train images, batch 256, test
accuracy per epoch over 12 epochs at a constant rate after a one-epoch warm-up):
server_arch at 1e-3 / 3e-3 / 1e-2 peaked at .861 / .868 / .879 but swung by 2-4 points
between epochs at every rate; 3e-3 reached .83 by epoch 3 (1e-2: .835 only at epoch 3, .664
after the first). The plateau decay of `trainables.attacks.training` then removes the swings.
"""

from __future__ import annotations

from torch import nn

from trainables.attacks.base import LearnedAttack
from trainables.attacks.registry import register
from trainables.models import SplitArchitecture

MLP_GRID = 2
MLP_HIDDEN = 256
# The classifiers are scored and evaluated as the moving average of their weights and stop by
# twice the suite's patience, decay patience and cap (`trainables.attacks.training` has the
# measurements).
LEAKAGE_EMA = 0.97
LEAKAGE_STOPPING_SCALE = 2


class LeakageClassifier(LearnedAttack):
    role = "leakage"
    threat = "query"
    ema = LEAKAGE_EMA
    stopping_scale = LEAKAGE_STOPPING_SCALE


@register("server_arch")
class ServerArch(LeakageClassifier):
    peak_lr = 3e-3

    @staticmethod
    def network(arch: SplitArchitecture, classes: int) -> nn.Module:
        """The rest of the split backbone with a fresh head of `classes`."""
        return arch.server(classes)

    def build(self) -> nn.Module:
        return self.network(self.ctx.method.ctx.arch, self.ctx.classes[1])


@register("mlp")
class PooledMLP(LeakageClassifier):
    peak_lr = 3e-3

    def build(self) -> nn.Module:
        channels = self.ctx.method.ctx.arch.z_shape[0]
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(MLP_GRID),
            nn.Flatten(),
            nn.Linear(channels * MLP_GRID**2, MLP_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(MLP_HIDDEN, self.ctx.classes[1]),
        )
