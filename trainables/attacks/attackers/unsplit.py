"""`unsplit`: model inversion by an attacker who knows the client's architecture but not its
weights (threat model `architecture_only`; Erdoğan, Küpçü and Çiçek, "UnSplit: Data-Oblivious
Model Inversion, Model Stealing, and Label Inference Attacks Against Split Learning", WPES
2022, arXiv:2108.09033).

The attacker holds a clone of the client (`arch.client()`, freshly initialised) and the observed
releases z, nothing else: no client to query, no labelled data. It alternates between
optimising the images x_hat with the clone fixed and the clone's weights with the images
fixed, both against

    ||clone(x_hat) - z||^2 / ||z||^2  +  tv * TV(x_hat)   (the image steps; the clone's: the distance)

Scaled down from the paper, written down:
- the paper inverts one image at a time for 1,000 rounds of 100 image steps and 100 clone
  steps (200,000 steps an image), its clone carried over from image to image; here a batch of
  `attacks.whitebox.batch_size` images shares one fresh clone, inverted for
  `attacks.whitebox.steps` steps in all (`ALTERNATION` image steps, then as many clone steps,
  in rounds), so it costs about what the white-box inversion costs;
- the images as the white-box attacker's (`trainables.attacks.attackers.whitebox`): a
  mid-grey start, Adam at `attacks.whitebox.lr` with `beta2`, cosine-annealed over the rounds,
  projected onto [0, 1] (the paper: Adam 1e-3 with AMSGrad, no box, an L2 term on x);
- the clone: Adam at `CLONE_LR` (the paper's 1e-3), in eval mode (its batch-norm layers an
  affine map it learns; no statistics of a batch it could not have);
- the distance normalised by the energy of z as the white-box attacker's, so the TV weight
  means the same; the weight is `attacks.whitebox.tv[0]`, not chosen: choosing it needs
  images released through the client, which this attacker cannot do (the paper fixes 0.1);
- the release's randomness (noise, pruning) is unknown to it: the clone fits z as observed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from trainables.attacks.attackers.whitebox import (
    WhiteboxInversion,
    invert_in_batches,
    total_variation,
)
from trainables.attacks.base import AttackData, LearnedAttack, Records
from trainables.attacks.registry import register
from trainables.attacks.releases import ReleasedSplit
from trainables.metrics import ImageSimilarity

ALTERNATION = 20  # image steps, then clone steps, per round
CLONE_LR = 1e-3


@register("unsplit")
class UnSplit(WhiteboxInversion):
    """Scored on the first `attacks.whitebox.images` test images, as the white-box attacker,
    whose budget settings (and so its screening and smoke hooks) it shares."""

    threat = "architecture_only"
    in_default_suite = False

    def fit(self, data: AttackData, learned: Mapping[str, LearnedAttack]) -> None:
        self.tv = self.ctx.cfg.whitebox.tv[0]

    def test_records(self, data: AttackData, test: ReleasedSplit) -> Records:
        cfg = self.ctx.cfg.whitebox
        originals = data.test.images_at(slice(0, cfg.images))
        self.reconstructions = invert_in_batches(
            self.ctx.method, originals, cfg.batch_size, lambda batch, target, _: self.invert(target, tuple(batch.shape[1:])),
        )
        return Records(similarity=ImageSimilarity.of(self.reconstructions, originals))

    def invert(self, target: torch.Tensor, image_shape: tuple[int, ...]) -> torch.Tensor:
        cfg = self.ctx.cfg.whitebox
        clone = self.ctx.method.ctx.arch.client().to(target.device).eval()
        energy = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)

        def distance(images: torch.Tensor) -> torch.Tensor:
            return ((clone(images) - target).flatten(1).pow(2).sum(1) / energy).sum()

        images = torch.full((len(target), *image_shape), 0.5, device=target.device).requires_grad_()
        image_optimizer = torch.optim.Adam([images], lr=cfg.lr, betas=(0.9, cfg.beta2))
        weights = [p for p in clone.parameters() if p.requires_grad]
        clone_optimizer = torch.optim.Adam(weights, lr=CLONE_LR) if weights else None
        alternation = max(1, min(ALTERNATION, cfg.steps // 2))  # a budget under two rounds (--smoke) is one short round
        rounds = max(1, cfg.steps // (2 * alternation))
        for round_ in range(rounds):
            for group in image_optimizer.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * round_ / rounds))
            for _ in range(alternation):
                image_optimizer.zero_grad(set_to_none=True)
                (distance(images) + self.tv * total_variation(images).sum()).backward()
                image_optimizer.step()
                with torch.no_grad():
                    images.clamp_(0, 1)
            if clone_optimizer is None:
                continue
            fixed = images.detach()
            for _ in range(alternation):
                clone_optimizer.zero_grad(set_to_none=True)
                distance(fixed).backward()
                clone_optimizer.step()
        return images.detach()
