"""Reconstruction decoders of the attack suite: the registry of `attacks.reconstruction`'s
trained attackers (the architectures live in `trainables.models.decoders`, which the
reconstruction defenses also build their simulated adversaries from).

Peak Adam learning rates, measured on the quickstart's released features (`none`, small_cnn
split 2, 9k train images, batch 256, test SSIM after epochs 1 / 5 / 10 / 12 at a constant
rate after a one-epoch warm-up):

| decoder | 1e-3 | 3e-3 | 1e-2 |
|---|---|---|---|
| mirror | .376 / .682 / .794 / .814 | .635 / .810 / .872 / .883 | .746 / .857 / .886 / .894 |
| fc | .409 / .692 / .748 / - | .505 / .713 / .741 / - | .515 / .680 / .707 / - |

so the mirror decoder (batch-normalised) trains at 1e-2 and the fully connected one at 3e-3.

Batch size, measured on the quickstart's own release (`noisy_arl` sigma 1, lambda .01, split 2,
seed 0, cap 40, the plateau rule of `trainables.attacks.training`): the mirror decoder at
batch 256 converged after 33 epochs at test SSIM .818, at batch 64 (four steps per released
batch of 256) after 33 epochs at .833, above the 40-epoch constant-rate reference's .826;
and a batch-64 epoch costs 4.4 s against 6.0 s at 256 (9k images, one core: the smaller
activations stay in cache). The fc decoder is weight-bound: 4.7 s an epoch at 64 against
2.8 s at 256, and .767 against .777, so it keeps the shared batch.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from trainables.attacks.leakage import LearnedAttacker
from trainables.models.decoders import FCDecoder, MirrorDecoder

DECODERS: dict[str, LearnedAttacker[Callable[[tuple[int, ...], tuple[int, int, int]], nn.Module]]] = {
    "mirror": LearnedAttacker(MirrorDecoder, 1e-2, batch_size=64),
    "fc": LearnedAttacker(FCDecoder, 3e-3),
}
