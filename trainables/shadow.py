"""The shadow attacker: a convergence signal that the defense cannot fight.

In a game phase (`Method.game_phases`: the client trains against the method's own
adversaries) the client can keep changing its release while their validation scores stay
flat, or swing while it does not: the proxies co-adapt with the client, so their scores show
the state of the game, not what the release still gives away.
The shadow attacker is a leakage classifier (the server architecture with the private head,
as the suite's `server_arch` attacker) that the client never sees: after every defense epoch
it trains one pass over the train split's releases (the validation release, client in eval
mode, no gradient into the defense), warm-started from the last epoch, at Adam
`SHADOW_LR`, in a fixed order per epoch; its validation accuracy (`val/shadow_leak_acc`) is
one more signal of the convergence rule (`trainables/convergence.py`): a release that still
changes what a fresh attacker gets changes it too, as far as one pass an epoch can follow.

Measured (DeepObfuscator lambda1 10, quickstart at the demo slice, 250 validation images,
seed 0, 110 game epochs at a constant rate, a fresh `server_arch` attacker every 20): the
proxy's validation leakage swung from .11 to .71 and back within the game, its swings
tracking the client's attack-and-recover cycle, not the release; the shadow stayed within
.75-.84 and the fresh attacker's test leakage within .78-.85. A shadow that starts only
with the game is still learning 30 epochs later (.64 -> .80), so it trains from the first
epoch of every phase. It is no substitute for the attack suite (at 1e-3 and one pass an
epoch it sits .02-.05 below the fresh attacker): it is a signal of movement.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainables.attacks.attackers.leakage import ServerArch
from trainables.data.batches import TensorSplit
from trainables.models import SplitArchitecture

SHADOW_LR = 1e-3
SHADOW_SEED = 7919


class ShadowAttacker:
    def __init__(self, arch: SplitArchitecture, private_classes: int, device: torch.device):
        with torch.random.fork_rng(devices=[]):  # its initialisation leaves the trial's RNG stream untouched
            torch.manual_seed(SHADOW_SEED)
            net = ServerArch.network(arch, private_classes)
            self.net: nn.Module = net.to(device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=SHADOW_LR)

    def train_epoch(self, release, split: TensorSplit, batch_size: int, epoch: int) -> None:
        """One pass over `split`'s releases (`release`: x -> z, called without gradient)."""
        self.net.train()
        order = torch.Generator().manual_seed(SHADOW_SEED + epoch)
        for x, _, y_private in split.batches(batch_size, order):
            with torch.no_grad():
                z = release(x)
            self.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.net(z), y_private).backward()
            self.optimizer.step()

    @torch.no_grad()
    def predict(self, z: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        return self.net(z).argmax(1)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
