"""`disco`: Dynamic and Invariant Sensitive Channel Obfuscation (Singh et al., Sec. 3.3-3.5, 4, App. A).

Client side: (optional pre-processing module) -> client network f1 -> z_hat (C channels);
a filter-generating network g scores every channel of z_hat per input; the released
z = z_hat * b keeps the (1 - R) * C best-scored channels. Server side: the task network f2
(predictor). A proxy adversary f3 sees z during training only.

    mask, training:  b = sigmoid((F - tau) / T), T = `temperature` (App. A: 0.03), tau the
                     pruning-ratio threshold of this input's scores (soft, differentiable)
    mask, release:   b = 1 on the top round((1 - R) * C) scores, 0 elsewhere (hard), so
                     exactly round((1 - R) * C) channels survive per input (eval mode)

Training, two phases (Sec. 4 "Dynamic Integration"), each run until it converges
(`trainables/convergence.py`):
  phase 1 (`client`): client and predictor minimise the task cross-entropy on the unpruned
    z_hat (Eq. 1). `train.init: pretrained` loads a task model trained without defense in its
    place (the same objective: the paper's phase 1 is that task model), and skips it.
  phase 2 (`filter`): the filter generator minimises rho * L_util - L_priv, the predictor
    L_util, the proxy adversary L_priv, all on the pruned z; the client is frozen (eval mode,
    no gradient) by default. No gradient of L_priv ever reaches the client: each loss is
    back-propagated only into the parameters it trains (`torch.autograd.backward(inputs=)`).
  L_priv (Sec. 3.3c): `adversary: attribute` -> cross-entropy of a classifier with the
  server architecture on the private attribute; `adversary: input` -> l1 between the image
  and a transposed-convolution decoder's reconstruction (App. A; the `mirror` decoder).
The pruning ratio R is also an inference-time knob (Sec. 3.5): `at_release_ratio(r)`
releases the frozen model at another r without retraining (`attacks.release_ratios`).

Choices the paper leaves open or contradicts itself on, made here:
- rho. Sec. 3.4 says "a high value of rho means higher importance on utility" and its
  objective min_phi[max_theta3 -L_priv + min_theta(-rho max_w -L_util)] gives the filter
  generator rho * L_util - L_priv; Sec. 3.6 instead writes L_J = L_util - rho * L_priv, where
  a high rho favours privacy. We follow Sec. 3.4 (its text and formula agree): the filter
  generator minimises rho * L_util - L_priv, rho >= 0, high rho = utility.
- Does the client train in phase 2? Sec. 3.4: "the client network parameters are only
  optimized to minimize L_util" (could mean: on the pruned z, throughout); Sec. 4: phase 2
  trains "the filter generating network with predictor and the (proxy) adversary". Default
  (`client_phase2: false`) follows Sec. 4: the client is frozen in phase 2 (eval mode, so its
  batch-norm statistics stay those of phase 1). `client_phase2: true` keeps training it in
  phase 2 on L_util through the pruned z (the task loss's gradient only, Sec. 3.4).
- Phase lengths are not given: each phase runs until its validation signals converge, at
  most `train.epochs` epochs (phase 1: the utility; phase 2: the utility and the proxy
  adversary's score). Without `start_phase` (direct use of `train_step`) the method stays in
  phase 1.
- Mask threshold tau: midway between the lowest kept and the highest pruned score of the
  input (so b > 0.5 exactly on the channels the hard mask keeps), detached from the graph
  (the score ranking is a selection, not a learned quantity). Training uses the soft mask
  (the paper's "weakly discretized" scores), release the hard one; no straight-through.
- Adversary in phase 1: none is trained (the paper's phase 1 is client + predictor);
  phase-1 steps report `task_loss` only; phase 2 adds `proxy_loss`, the proxy adversary's
  L_priv (cross-entropy, or l1 with `adversary: input`).
- Filter-generating network: App. A uses "ResNet-18 as the base architecture for all four
  networks" with a final fully-connected layer of C outputs: here the server architecture of
  the split (rest of the backbone + pooled linear head) with C outputs, fed z_hat.
- Pre-processing module (`preprocess: true`, Sec. 3.3a, App. A): the image is cut into d x d
  disjoint patches (d = `grid`, App. A: d^2 = 64), each resized back to H x W (bilinear),
  convolved by one conv layer with F = d^2 filters (3x3, stride 1, padding 1: the kernel
  size is not given), the F maps of each patch averaged (the feature aggregator) and the
  d^2 averages stacked into A (d^2 x H x W), which feeds a client network built for d^2 input
  channels. Sec. 3.3 splits the image and then convolves; App. A says the decoupler "splits
  the feature-map": we follow Sec. 3.3. Averaging the F outputs of a linear conv equals one
  conv with the filter-averaged kernel, which is what is computed (same values, 1/F of the
  cost). When d does not divide H or W, the patches are the nearest-integer partition.
  `preprocess: false` is DISCO without the module (the plain split client on the image, as
  for every other method), not the paper's "toggled-off" variant, which keeps the conv.
- Optimiser: App. A uses SGD with momentum at lr 0.01 for all networks; `optimizer: sgd`
  (default) uses SGD, momentum 0.9 (not given). Its learning rate is DISCO's own `lr`, by
  default the paper's 0.01 with SGD: the platform's shared `train.lr` (1e-3 in the quickstart
  and compare specs) is an Adam rate, ten times below the paper's for SGD. `optimizer: adam`
  uses Adam like the other methods of this platform, at `train.lr` unless `lr` is set.
- Split "0" (nothing on the client) is rejected: there are no features to prune.
- Release randomness and the white-box attacker: the released hard mask is a function of x
  (no randomness: `release_is_random` is False). It is piecewise constant in x, so the
  white-box inversion differentiates through the release as it is: the gradient flows
  through the kept features, the mask of the current x_hat held fixed (the top-k selection
  has no gradient); the mask is recomputed from x_hat at every step.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from trainables.errors import InputError
from trainables.methods.base import Method, MethodContext, NoParams, SameBudgetControl, overriding
from trainables.methods.channel_masks import hard_channel_mask, kept_channels
from trainables.methods.updates import make_optimizer
from trainables.models import INPUT_SPLIT, SplitArchitecture
from trainables.models.decoders import MirrorDecoder

PAPER_SGD_LR = 0.01  # App. A


class DiscoParams(NoParams):
    rho: float = Field(1.0, ge=0, description="filter generator minimises rho * L_util - L_priv (high rho = utility)")
    pruning_ratio: float = Field(0.6, ge=0, lt=1, description="fraction R of channels pruned per input (Fig. 3: 0.6)")
    adversary: Literal["attribute", "input"] = Field(
        "attribute", description="proxy adversary: private-attribute classifier (CE) or image decoder (l1)"
    )
    preprocess: bool = Field(False, description="pre-processing module (spatial decoupler + feature aggregator)")
    grid: int = Field(8, ge=1, description="d: the spatial decoupler makes d x d patches (d^2 = F filters)")
    temperature: float = Field(0.03, gt=0, description="temperature of the training-time sigmoid mask")
    client_phase2: bool = Field(False, description="keep training the client on L_util in phase 2")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="App. A: SGD with momentum")
    lr: float | None = Field(
        None, gt=0, description="DISCO's learning rate for all its networks; null = the paper's 0.01 with sgd, train.lr with adam"
    )


def soft_channel_mask(scores: torch.Tensor, ratio: float, temperature: float) -> torch.Tensor:
    """sigmoid((score - tau) / T), tau midway between the lowest kept and highest pruned score."""
    channels = scores.shape[1]
    keep = kept_channels(channels, ratio)
    if keep in (0, channels):
        return torch.full_like(scores, float(keep > 0))
    ordered = scores.detach().sort(dim=1, descending=True).values
    threshold = (ordered[:, keep - 1 : keep] + ordered[:, keep : keep + 1]) / 2
    return torch.sigmoid((scores - threshold) / temperature)


def _partition(size: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * size / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


class SpatialDecoupler(nn.Module):
    """DISCO's pre-processing module: d x d patches, each resized to the image size, one conv
    with F = d^2 filters, the F maps averaged per patch (feature aggregator) -> d^2 channels."""

    def __init__(self, in_channels: int, grid: int, image_size: tuple[int, int]):
        super().__init__()
        if grid > min(image_size):
            raise InputError(
                f"params.grid: the spatial decoupler cannot cut a {image_size[0]}x{image_size[1]} image into "
                f"{grid}x{grid} patches; use grid <= {min(image_size)}."
            )
        self.grid = grid
        self.rows = _partition(image_size[0], grid)
        self.cols = _partition(image_size[1], grid)
        self.conv = nn.Conv2d(in_channels, grid * grid, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        patches = [
            F.interpolate(x[:, :, r0:r1, c0:c1], size=(height, width), mode="bilinear", align_corners=False)
            for r0, r1 in self.rows
            for c0, c1 in self.cols
        ]
        stacked = torch.stack(patches, dim=1).flatten(0, 1)  # (B * d^2, C, H, W)
        # mean over the F filters' outputs == one conv with the filter-averaged kernel
        weight = self.conv.weight.mean(dim=0, keepdim=True)
        bias = self.conv.bias.mean(dim=0, keepdim=True)
        aggregated = F.conv2d(stacked, weight, bias, padding=self.conv.padding)
        return aggregated.view(batch, self.grid * self.grid, height, width)


class Disco(Method):
    Params = DiscoParams
    game_phases = ("filter",)
    # Is the learned, input-dependent channel choice better than keeping as many channels at random?
    control = SameBudgetControl("random_pruning", ("pruning_ratio",))
    phases = ("client", "filter")
    pretrained_phases = ("client",)

    def __init__(self, ctx: MethodContext, params: DiscoParams):
        super().__init__(ctx, params)
        arch = ctx.arch
        if arch.split == INPUT_SPLIT:
            raise InputError("model.split: disco prunes the client's feature channels; split '0' has none. Use a split >= 1.")
        channels, height, width = arch.input_shape
        if params.preprocess:
            self.pre: nn.Module = SpatialDecoupler(channels, params.grid, (height, width))
            client_arch = SplitArchitecture(arch.backbone, arch.split, (params.grid**2, height, width), arch.options)
            if client_arch.z_shape != arch.z_shape:
                raise InputError(
                    f"params.preprocess: backbone {arch.backbone!r} at split {arch.split!r} gives features of shape "
                    f"{client_arch.z_shape} after the pre-processing module instead of {arch.z_shape}; "
                    "set preprocess: false."
                )
        else:
            self.pre = nn.Identity()
            client_arch = arch
        self.client = client_arch.client()
        self.filter = arch.server(arch.z_shape[0])
        self.server = arch.server(ctx.task_classes)
        if params.adversary == "attribute":
            self.adversary: nn.Module = arch.server(ctx.private_classes)
        else:
            self.adversary = MirrorDecoder(arch.z_shape, arch.input_shape)
        self.optimizers = {
            "client": self._optimizer([*self.pre.parameters(), *self.client.parameters()]),
            "filter": self._optimizer(self.filter.parameters()),
            "server": self._optimizer(self.server.parameters()),
            "adversary": self._optimizer(self.adversary.parameters()),
        }
        self.release_ratio = params.pruning_ratio

    def _optimizer(self, parameters) -> torch.optim.Optimizer:
        default_lr = PAPER_SGD_LR if self.params.optimizer == "sgd" else self.ctx.lr
        return make_optimizer(parameters, self.params.lr or default_lr, self.params.optimizer)

    # -- client computation ---------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """z_hat: the client network's (unpruned) features."""
        return self.client(self.pre(x))

    def channel_scores(self, features: torch.Tensor) -> torch.Tensor:
        return self.filter(features)

    def mask(self, features: torch.Tensor, ratio: float | None = None) -> torch.Tensor:
        """(B, C) channel mask: soft (temperature sigmoid) in training, hard top-(1-R) in eval."""
        ratio = self.release_ratio if ratio is None else ratio
        scores = self.channel_scores(features)
        if self.training:
            return soft_channel_mask(scores, ratio, self.params.temperature)
        return hard_channel_mask(scores, ratio)

    @staticmethod
    def apply_mask(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return features * mask.view(*mask.shape, *([1] * (features.dim() - 2)))

    def release(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        return self.apply_mask(features, self.mask(features))

    def validation_release(self, x: torch.Tensor) -> torch.Tensor:
        """Phase 1 trains client and predictor on the unpruned features: they are what it is
        validated (and judged converged) on. Measured: validated on the pruned release with the
        untrained filter instead, the phase-1 utility wandered between 0.63 and 0.90 while the
        training loss was near 0 (rho 1000, demo slice)."""
        return self.features(x) if self.phase == "client" else self.release(x)

    def at_release_ratio(self, ratio: float) -> AbstractContextManager:
        return overriding(self, "release_ratio", ratio)

    def serve(self, z: torch.Tensor) -> torch.Tensor:
        return self.server(z)

    def release_is_random(self) -> bool:
        return self.training  # eval: the hard top-k mask, a function of x

    def proxy_leak(self, z: torch.Tensor) -> torch.Tensor | None:
        return self.adversary(z) if self.params.adversary == "attribute" else None

    def proxy_decoders(self) -> dict[str, nn.Module]:
        return {"adversary": self.adversary} if self.params.adversary == "input" else {}

    def client_network(self) -> nn.Module:
        return nn.ModuleList([self.pre, self.client, self.filter])

    # -- training -------------------------------------------------------------------------
    def adversary_loss(self, z: torch.Tensor, x: torch.Tensor, y_private: torch.Tensor) -> torch.Tensor:
        if self.params.adversary == "attribute":
            return F.cross_entropy(self.adversary(z), y_private)
        return F.l1_loss(self.adversary(z), x)

    @contextmanager
    def _frozen_client(self):
        modes = [m.training for m in (self.pre, self.client)]
        self.pre.eval()
        self.client.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.pre.train(modes[0])
            self.client.train(modes[1])

    def _zero_grad(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        self._zero_grad()
        if self.phase == "client":
            task_loss = F.cross_entropy(self.server(self.features(x)), y_task)
            task_loss.backward()
            self.optimizers["client"].step()
            self.optimizers["server"].step()
            return {"task_loss": task_loss.item()}
        return self._phase2_step(x, y_task, y_private)

    def _phase2_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        train_client = self.params.client_phase2
        if train_client:
            features = self.features(x)
        else:
            with self._frozen_client():
                features = self.features(x)
        z = self.apply_mask(features, self.mask(features))
        task_loss = F.cross_entropy(self.server(z), y_task)
        proxy_loss = self.adversary_loss(z, x, y_private)
        utility_params = [*self.server.parameters()]
        if train_client:
            utility_params += [*self.pre.parameters(), *self.client.parameters()]
        # Each loss reaches only the parameters it trains: L_priv never reaches the client.
        torch.autograd.backward(task_loss, inputs=utility_params, retain_graph=True)
        torch.autograd.backward(proxy_loss, inputs=list(self.adversary.parameters()), retain_graph=True)
        torch.autograd.backward(self.params.rho * task_loss - proxy_loss, inputs=list(self.filter.parameters()))
        for name in ("filter", "server", "adversary", *(("client",) if train_client else ())):
            self.optimizers[name].step()
        return {"task_loss": task_loss.item(), "proxy_loss": proxy_loss.item()}
