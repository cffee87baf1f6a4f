"""`fora`: reconstruction by an attacker who never queries the client (threat model `no_query`;
Xu et al., "A Stealthy Wrongdoer: Feature-Oriented Reconstruction Attack against Split
Learning", CVPR 2024, FORA).

The attacker holds auxiliary images of the same distribution and releases it observed of
other people's images, never a pair of the two, and no access to the client. FORA:
1. a substitute client, the client's architecture freshly initialised, is trained so that its
   features of the auxiliary images are distributed as the observed releases: a
   discriminator tells the two apart and the substitute learns to fool it, plus a
   multi-kernel MMD between the two batches;
2. a decoder learns to invert the substitute on the auxiliary images (pairs the attacker
   does have);
3. the decoder reconstructs the observed releases of the test images.

Scaled down and filled in, written down:
- the attacker split is cut in two: its first half are the auxiliary images (images only),
  the second half's releases are the observed ones (their images never used);
- the substitute trains `attacks.epochs` epochs, a fixed budget (nothing attacker-side scores
  how close a substitute is; the paper trains a fixed number of epochs too), Adam at
  `SUBSTITUTE_LR`, the discriminator (z average-pooled to `GRID` x `GRID`, a 256-wide MLP,
  the `mlp` attacker's shape) at `DISCRIMINATOR_LR`, the non-saturating GAN loss plus
  `MMD_WEIGHT` times the MMD of Gaussian kernels at 1/2, 1 and 2 times the median distance,
  on the pooled features; its last epoch's MMD is logged (`attack/fora_mmd`);
- the paper's substitute also learns from the server's own model; here it does not (the
  server model is the defense's, which a `no_query` attacker is not given);
- the decoder is the `mirror` decoder at its measured rate and batch, trained by the suite's
  rule (`trainables.attacks.training`) on the substitute's features of 90 % of the auxiliary
  images and selected on the other 10 % (`attack/fora_decoder_converged`);
- the release's randomness is not known to it: the substitute is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from trainables.attacks.attackers.decoders import Mirror
from trainables.attacks.base import Attack, AttackData, LearnedAttack, Records, decoded_similarity
from trainables.attacks.registry import register
from trainables.attacks.releases import ReleasedSplit
from trainables.attacks.training import Attacker, train_attackers
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.methods.base import ReleaseParts
from trainables.models.decoders import MirrorDecoder

SUBSTITUTE_LR = 1e-3
DISCRIMINATOR_LR = 1e-3
MMD_WEIGHT = 1.0
GRID = 4
HELD_OUT = 0.1  # of the auxiliary images: the decoder's selection split


def part(split: TensorSplit, start: int, stop: int) -> TensorSplit:
    return TensorSplit(split.images[start:stop], split.task[start:stop], split.private[start:stop])


def pooled(z: torch.Tensor) -> torch.Tensor:
    return (F.adaptive_avg_pool2d(z, GRID) if z.dim() == 4 else z).flatten(1)


def mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared maximum mean discrepancy of two batches, Gaussian kernels at 1/2, 1 and 2 times
    the median pairwise distance."""
    both = torch.cat([a, b])
    distances = torch.cdist(both, both).pow(2)
    scale = distances.detach().median().clamp_min(1e-12)
    kernel = sum(torch.exp(-distances / (scale * factor)) for factor in (0.5, 1.0, 2.0))
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


@register("fora")
class FeatureOrientedReconstruction(Attack):
    role = "reconstruction"
    threat = "no_query"
    in_default_suite = False

    def fit(self, data: AttackData, learned: Mapping[str, LearnedAttack]) -> None:
        cfg, arch = self.ctx.cfg, self.ctx.method.ctx.arch
        device = data.attacker.images.device
        half = len(data.attacker) // 2
        auxiliary, observed = part(data.attacker, 0, half), part(data.attacker, half, len(data.attacker))
        observed_releases = ReleasedSplit(self.ctx.method.release_parts(), observed, cfg.batch_size)
        self.substitute = arch.client().to(device)
        self.mmd = self.train_substitute(auxiliary, observed_releases)
        self.substitute.eval().requires_grad_(False)
        substitute = ReleaseParts(features=self.substitute)
        cut = max(1, math.floor(len(auxiliary) * (1 - HELD_OUT)))
        self.decoder = Attacker(MirrorDecoder(arch.z_shape, arch.input_shape).to(device), "image", cfg.lr or Mirror.peak_lr,
                                Mirror.batch_size, Mirror.ema if cfg.ema is None else cfg.ema)
        train_attackers({"decoder": self.decoder}, ReleasedSplit(substitute, part(auxiliary, 0, cut), cfg.batch_size), cfg,
                        torch.Generator().manual_seed(self.ctx.seed + 1),
                        ReleasedSplit(substitute, part(auxiliary, cut, len(auxiliary)), cfg.batch_size))

    def train_substitute(self, auxiliary: TensorSplit, observed: ReleasedSplit) -> float:
        """The substitute trained to release the auxiliary images as the observed releases are
        distributed; returns its last epoch's mean MMD."""
        cfg = self.ctx.cfg
        weights = [p for p in self.substitute.parameters() if p.requires_grad]
        if not weights:  # the client is the identity (an image-level release): nothing to fit
            return math.nan
        with torch.no_grad():
            features = pooled(self.substitute(auxiliary.images_at(slice(0, 2)))).shape[1]
        discriminator = nn.Sequential(nn.Linear(features, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1)).to(auxiliary.images.device)
        substitute_optimizer = torch.optim.Adam(weights, lr=SUBSTITUTE_LR)
        discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=DISCRIMINATOR_LR)
        order = torch.Generator().manual_seed(self.ctx.seed)
        discrepancy = math.nan
        for _ in range(cfg.epochs):
            self.substitute.train()
            epoch_mmd = []
            for (x, _, _), (z, _) in zip(auxiliary.batches(cfg.batch_size, order), observed.batches(order), strict=False):
                fake, real = pooled(self.substitute(x)), pooled(z)
                discriminator_optimizer.zero_grad(set_to_none=True)
                real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
                (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                 + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))).backward()
                discriminator_optimizer.step()
                substitute_optimizer.zero_grad(set_to_none=True)
                fooled = discriminator(fake)
                discrepancy_now = mmd(fake, real)
                (F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled)) + MMD_WEIGHT * discrepancy_now).backward()
                substitute_optimizer.step()
                epoch_mmd.append(discrepancy_now.item())
            discrepancy = sum(epoch_mmd) / max(1, len(epoch_mmd))
        return discrepancy

    @torch.no_grad()
    def test_records(self, data: AttackData, test: ReleasedSplit) -> Records:
        similarity = decoded_similarity(self.decoder.model.eval(), data.test, test)
        return Records(similarity=similarity, bookkeeping={
            "fora_mmd": self.mmd, "fora_decoder_converged": float(self.decoder.converged), "fora_decoder_restarts": float(self.decoder.restarts),
        })

    @torch.no_grad()
    def gallery(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder.model.eval()(self.ctx.method.release(images)).clamp(0, 1)

    @classmethod
    def screening_budget(cls, attacks: AttackConfig, fraction: float) -> dict[str, Any]:
        return LearnedAttack.screening_budget.__func__(cls, attacks, fraction)  # its budget is the learned attackers' cap

    @classmethod
    def shrink_for_smoke(cls, attacks: dict) -> None:
        LearnedAttack.shrink_for_smoke.__func__(cls, attacks)
