"""`deep_obfuscator`: DeepObfuscator (Li et al., Sec. 3, Algorithm 1, Table 1).

Four networks: the obfuscator O (the client), the classifier C (the deployed server), the
adversary classifier AC (the server architecture with the private head) and the adversary
reconstructor AR (O mirrored layer by layer: each max-pool an up-sampling layer, each conv a
transposed conv, Table 1). Losses on a batch (x, y, s):

    L(C)   = CE(C(O(x)), y)                 L(AC)  = CE(AC(O(x)), s)
    L(AR1) = 1 - MS-SSIM(x, AR(O(x)))       L(AR2) = 1 - MS-SSIM(I_noise, AR(O(x)))

Two phases (`phases`), each run until its validation signals converge
(`trainables/convergence.py`). Pre-training (`pretrain`): O and C jointly on L(C) "without
privacy concern", and, on the same batches with O fixed, AR on L(AR1) and AC on L(AC) "for
initialization" (Sec. 3.5: "to obtain the optimal performance"), until the utility and both
adversaries' validation scores stop moving. Then the game (`game`): Algorithm 1 cycles over
batches, stage = game step index mod 4:

    0  O  <- L(C) + lambda2 * (L(AR2) - L(AR1))      (Eq. 9; C, AR fixed)
    1  O  <- L(C) - lambda1 * L(AC)                  (Eq. 5; C, AC fixed)
    2  AR <- L(AR1),  AC <- L(AC)                    (Eq. 7, 4; O fixed)
    3  C  <- L(C)                                    (O fixed)

Each stage back-propagates into, and steps, only its own networks; a fixed network runs in
train mode but its batch-norm statistics are restored afterwards, so a stage leaves the other
networks exactly as they were. Separate Adam optimisers (Sec. 4.1) at `train.lr`, AR's at
`reconstructor_lr`, by default 10 x `train.lr` (the paper gives no rate). Measured at lambda1 =
lambda2 = 0, so AR only watches (`benchmarks/proxy_calibration.py`, demo slice, seed 0): at
1e-3 AR's test SSIM was .825 where the fresh mirror decoder reached .906, still creeping up
when the game stopped (AR steps on one batch in four); at 1e-2, .860 against .903. The fixed
networks' batch statistics make the deployed O -> C path's running statistics stale (0.41 vs
0.98 accuracy in one measured case): the trial recomputes them after training
(`trainables/batch_norm.py`).

The game's step counter lives in a buffer (`game_steps`), as does the noise image
(`noise_image`): both are in the method's state_dict, so a resumed trial continues in the
same stage with the same I_noise.

Choices the paper leaves open or contradicts itself on, made here:
- Algorithm 1 (lines 6, 9) has no lambdas; Eq. 5 and 9 weight L(AC) by lambda1 and
  L(AR2) - L(AR1) by lambda2: the equations are followed. The paper's settings: lambda1 in
  {1, 2, 5, 10}, lambda2 = 1 (defaults lambda1 = 1, lambda2 = 1).
- Sec. 3.4 says "the adversary reconstructor is trained to make each reconstructed image
  similar to I_noise but different from I_o", but Eq. 9 and Algorithm 1 train the obfuscator
  on L(AR2) - L(AR1) and AR only on L(AR1): the equations are followed (AR is the attacker).
- I_noise: "one additional Gaussian noise image", parameters not given: one image of the
  input's shape, pixels N(0.5, 0.25^2) clipped to [0, 1] (MS-SSIM needs data range 1), drawn
  once at construction from the trial's seeded RNG and never redrawn.
- Pre-training length is not given: until convergence (the paper's "optimal performance"),
  at most `train.epochs` epochs. Pre-training of AR/AC runs concurrently with O/C's (on each
  pre-training batch, after O/C's step is computed on the same features, O fixed), so they
  end initialised on the pre-trained O. `train.init: pretrained` starts O and C from a task
  model trained without defense and still runs this phase: AR and AC need it. Without
  `start_phase` (direct `train_step` use) the method is in pre-training.
- The cycle starts at stage 0 with the game and runs across epoch boundaries (the paper's
  "batch idx" is per epoch; with epochs not a multiple of 4 batches the difference is one
  partial cycle per epoch).
- MS-SSIM on small images: `trainables.metrics.ms_ssim_settings` (28x28 and 32x32: 3 scales,
  renormalised betas; the Gaussian window is 11 taps), `normalize="relu"`; the
  differentiable MS-SSIM of `ssim_losses`, equal to torchmetrics'.
- Table 1's classifier (3x conv-256 ... 2x FC-4096, sigmoid) is "the rest of VGG16" after the
  pool2 obfuscator: here the server of the split (rest of the backbone + the platform's
  pooled linear head); AC has the same architecture. AR: BN + ReLU between its layers,
  sigmoid output (images in [0, 1]); non-chain clients (resnet18) get the `mirror` decoder.
- Multi-label tasks (several binary attributes with BCE, Eq. 1 and 3, the paper's CelebA/LFW
  experiments) are out of scope: single-label cross-entropy on `dataset.task` and
  `dataset.private`.
- Reported losses: `task_loss` = L(C), `adversary_ce` = L(AC) on every batch (computed without
  gradient in the stages that do not use it).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from trainables.methods.base import Method, MethodContext, NoParams
from trainables.methods.ssim_losses import ms_ssim
from trainables.methods.updates import (
    OWN_DECODER_LR_RATIO,
    keeping_buffers,
    make_optimizer,
    parameters_of,
    step,
)
from trainables.models.reversed_decoder import mirrored_decoder

NOISE_MEAN, NOISE_STD = 0.5, 0.25
STAGES = ("defend_reconstruction", "defend_leakage", "attack", "classifier")


class DeepObfuscatorParams(NoParams):
    lambda1: float = Field(1.0, ge=0, description="weight of -L(AC) for the obfuscator (Eq. 5)")
    lambda2: float = Field(1.0, ge=0, description="weight of L(AR2) - L(AR1) for the obfuscator (Eq. 9)")
    reconstructor_lr: float | None = Field(None, gt=0, description="Adam learning rate of the adversary reconstructor AR; null = 10 x train.lr")


class DeepObfuscator(Method):
    Params = DeepObfuscatorParams
    game_phases = ("game",)
    phases = ("pretrain", "game")

    def __init__(self, ctx: MethodContext, params: DeepObfuscatorParams):
        super().__init__(ctx, params)
        arch = ctx.arch
        self.obfuscator = arch.client()
        self.classifier = arch.server(ctx.task_classes)
        self.adversary_classifier = arch.server(ctx.private_classes)
        self.reconstructor = mirrored_decoder(self.obfuscator, arch.z_shape, ctx.image_shape, pool_as="upsample")
        for name in ("obfuscator", "classifier", "adversary_classifier", "reconstructor"):
            lr = (params.reconstructor_lr or OWN_DECODER_LR_RATIO * ctx.lr) if name == "reconstructor" else ctx.lr
            self.optimizers[name] = make_optimizer(parameters_of(getattr(self, name)), lr)
        noise = (NOISE_MEAN + NOISE_STD * torch.randn(1, *ctx.image_shape)).clamp(0, 1)
        self.register_buffer("noise_image", noise)
        self.register_buffer("game_steps", torch.zeros((), dtype=torch.int64))

    def task_networks(self) -> tuple[nn.Module, nn.Module]:
        return self.obfuscator, self.classifier

    def stage(self) -> str:
        """What the next `train_step` does: `pretrain` or one of STAGES."""
        if self.phase == "pretrain":
            return "pretrain"
        return STAGES[int(self.game_steps) % 4]

    # ------------------------------------------------------------------ losses

    def reconstruction_losses(self, x: torch.Tensor, reconstruction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L(AR1), L(AR2))."""
        ar1 = 1 - ms_ssim(reconstruction, x)
        ar2 = 1 - ms_ssim(reconstruction, self.noise_image.expand_as(reconstruction))
        return ar1, ar2

    @torch.no_grad()
    def _monitor(self, module: nn.Module, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with keeping_buffers(module):
            return F.cross_entropy(module(z), labels)

    def _fixed_features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), keeping_buffers(self.obfuscator):
            return self.obfuscator(x)

    # ------------------------------------------------------------------ training

    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        stage = self.stage()
        opt = self.optimizers
        if stage == "pretrain":
            z = self.obfuscator(x)
            task_loss = F.cross_entropy(self.classifier(z), y_task)
            step(task_loss, [opt["obfuscator"], opt["classifier"]], self.obfuscator, self.classifier)
            fixed = z.detach()
            ar1, _ = self.reconstruction_losses(x, self.reconstructor(fixed))
            step(ar1, [opt["reconstructor"]], self.reconstructor)
            adversary_ce = F.cross_entropy(self.adversary_classifier(fixed), y_private)
            step(adversary_ce, [opt["adversary_classifier"]], self.adversary_classifier)
        elif stage == "defend_reconstruction":
            z = self.obfuscator(x)
            with keeping_buffers(self.classifier, self.reconstructor):
                task_loss = F.cross_entropy(self.classifier(z), y_task)
                ar1, ar2 = self.reconstruction_losses(x, self.reconstructor(z))
            step(task_loss + self.params.lambda2 * (ar2 - ar1), [opt["obfuscator"]], self.obfuscator)
            adversary_ce = self._monitor(self.adversary_classifier, z.detach(), y_private)
        elif stage == "defend_leakage":
            z = self.obfuscator(x)
            with keeping_buffers(self.classifier, self.adversary_classifier):
                task_loss = F.cross_entropy(self.classifier(z), y_task)
                adversary_ce = F.cross_entropy(self.adversary_classifier(z), y_private)
            step(task_loss - self.params.lambda1 * adversary_ce, [opt["obfuscator"]], self.obfuscator)
        elif stage == "attack":
            z = self._fixed_features(x)
            ar1, _ = self.reconstruction_losses(x, self.reconstructor(z))
            step(ar1, [opt["reconstructor"]], self.reconstructor)
            adversary_ce = F.cross_entropy(self.adversary_classifier(z), y_private)
            step(adversary_ce, [opt["adversary_classifier"]], self.adversary_classifier)
            task_loss = self._monitor(self.classifier, z, y_task)
        else:  # classifier
            z = self._fixed_features(x)
            task_loss = F.cross_entropy(self.classifier(z), y_task)
            step(task_loss, [opt["classifier"]], self.classifier)
            adversary_ce = self._monitor(self.adversary_classifier, z, y_private)
        if stage != "pretrain":
            self.game_steps += 1
        return {"task_loss": task_loss.item(), "adversary_ce": adversary_ce.item()}

    # ------------------------------------------------------------------ deployment

    def release(self, x: torch.Tensor) -> torch.Tensor:
        return self.obfuscator(x)

    def serve(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(z)

    def release_is_random(self) -> bool:
        return False

    def proxy_leak(self, z: torch.Tensor) -> torch.Tensor:
        return self.adversary_classifier(z)

    def proxy_decoders(self) -> dict[str, nn.Module]:
        return {"reconstructor": self.reconstructor}

    def client_network(self) -> nn.Module:
        return self.obfuscator
