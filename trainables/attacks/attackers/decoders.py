"""Reconstruction decoders: networks trained on released z to rebuild the image, by an
attacker who can release its own images through the deployed client (threat model `query`).
The architectures live in `trainables.models.decoders`, which the reconstruction defenses
also build their simulated adversaries from.

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
from typing import ClassVar

from torch import nn

from trainables.attacks.base import LearnedAttack
from trainables.attacks.registry import register
from trainables.models.decoders import FCDecoder, MirrorDecoder


class Decoder(LearnedAttack):
    role = "reconstruction"
    threat = "query"

    # (z shape, image shape) -> the untrained decoder
    architecture: ClassVar[Callable[[tuple[int, ...], tuple[int, int, int]], nn.Module]]

    def build(self) -> nn.Module:
        arch = self.ctx.method.ctx.arch
        return type(self).architecture(arch.z_shape, arch.input_shape)


@register("mirror")
class Mirror(Decoder):
    peak_lr = 1e-2
    batch_size = 64
    architecture = MirrorDecoder


@register("fc")
class FullyConnected(Decoder):
    peak_lr = 3e-3
    architecture = FCDecoder
