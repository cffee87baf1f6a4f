"""`privacy_partitioning`: Privacy Partitioning (Chi et al., Sec. IV-B, IV-E, Algorithm 1).

The network is split into a local partition theta_l (the client) and a remote partition
theta_r (the server). A suite of D defenders f_d: H -> X, each a different decoder
architecture, simulates the reconstruction attacker. Per mini-batch (Algorithm 1):

  1. every defender takes one step on  mean_i d(x_i, f_d(h_i)),  h = f_l(x) detached (Eq. 1);
  2. the best defender is the one with the lowest batch-mean distance (re-evaluated with the
     just-updated defenders on the same batch);
  3. the model theta = {theta_l, theta_r} takes one step on
        mean_i l(y_i, f(x_i)) - lambda * d(x_i, f_best(f_l(x_i)))            (Eq. 2 / 4),
     the gradient flowing into the client through the chosen defender only (the defenders
     are fixed in this step: their parameters and batch-norm statistics stay as they are).

Defender architectures, in suite order (`defenders: D` takes the first D):
  - `deconv`: the reversed local layers (App. B/C): each pool + conv of the client becomes a
    stride-2 transposed conv, each other conv a stride-1 one, batch norm + ReLU between
    (`trainables.models.reversed_decoder`); clients that are not a plain chain (resnet18,
    mobilenet_v2) get the attack suite's `mirror` decoder instead;
  - `fc`: h flattened -> 1024 -> ReLU -> image (App. B/C "FC attacker");
  - `sparse_fc`: the same with dropout 0.5 after the ReLU ("SPARSE FC attacker").
Distance d (`distance`): `ssim` = 1 - SSIM (the paper's choice, Sec. V-B "we use the SSIM as
the distance metric"), or `mse` (per-pixel mean squared error).

Choices the paper leaves open or contradicts itself on, made here:
- d "the SSIM": SSIM is a similarity, while Eq. 1 minimises d for the defender and Eq. 2
  subtracts it for the model, so d must be a distance: d = 1 - SSIM (torchmetrics' functional
  SSIM, Gaussian kernel, sigma 1.5, 11 px or the largest odd size that fits, data range 1).
- Algorithm 1, step 1 writes the defender gradient as a mean over the whole training set
  (1/m sum_{i=1}^m) inside the mini-batch loop: the mini-batch mean is used.
- The defenders train on d (Eq. 1), not on the MSE the paper's attackers use (Sec. V-B).
- Step 2 is evaluated after step 1, with the updated defenders, in train mode (the sparse FC
  defender's dropout is active, as when it trains); ties go to the first defender.
- Defender suite: the MNIST suite (App. A) is four FC variants, LFW/CIFAR use a single
  deconv defender; here the suite is the three decoder families of App. B/C
  (deconv, FC, sparse FC). D = 1 is the paper's single-defender LFW/CIFAR setting (default).
- FC width: App. B uses 4096 hidden units, App. C 1024: 1024. h is first average-pooled to at
  most 8192 values (as the attack suite's `fc` decoder) - the full flattened pool1 map of a
  64x64 image would need a 32k x 1024 weight matrix.
- Output activation: sigmoid (images are in [0, 1] here; the paper's tanh / clipping is for
  images normalised to [-1, 1]).
- lambda: its scale depends on d, the task loss and the optimiser; the paper uses 100-500 on
  MNIST (Adam) and 0.1 on LFW (SGD). Default 0.1; the search space spans 0.01-100.
- Optimiser (`optimizer`): MNIST uses Adam (model lr 1e-4, defenders 1e-3), LFW/CIFAR SGD with
  momentum 0.9 and l2 weight decay (5e-4 for CIFAR). `adam` (default, like the rest of the
  platform) or `sgd` (momentum 0.9, weight decay 5e-4). The model trains at `train.lr`, the
  defenders at `defender_lr`, by default the MNIST setting's ratio: 10 x `train.lr` (§V-B:
  1e-3 against 1e-4; the LFW/CIFAR runs use one rate for both, `defender_lr` = `train.lr`
  there). The paper's lr decay and data augmentation are not part of the platform.
- Defender steps per mini-batch (`defender_steps`): Algorithm 1 takes one (default); more
  give a stronger simulated attacker per model step, on the same batch and the same h.
- No private-attribute proxy adversary (the defenders reconstruct), so `val/proxy_leak_acc`
  is absent; `defender_distance` is the chosen defender's distance d.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from trainables.methods.base import Method, MethodContext, NoParams, ReleasesClientFeatures
from trainables.methods.ssim_losses import ssim
from trainables.methods.updates import keeping_buffers, make_optimizer, parameters_of, step
from trainables.models.decoders import FC_HIDDEN, FC_MAX_FEATURES, _pool_to_fit
from trainables.models.reversed_decoder import mirrored_decoder

DEFENDER_ARCHITECTURES = ("deconv", "fc", "sparse_fc")
SPARSE_DROPOUT = 0.5
SGD_WEIGHT_DECAY = 5e-4  # App. C, CIFAR
DEFENDER_LR_RATIO = 10.0  # §V-B, MNIST: defenders at 1e-3, the model at 1e-4


class PrivacyPartitioningParams(NoParams):
    lambda_: float = Field(0.1, ge=0, alias="lambda", description="defender weight (Eq. 2)")
    defenders: int = Field(1, ge=1, le=len(DEFENDER_ARCHITECTURES), description="size D of the defender suite: the first D of deconv, fc, sparse_fc")
    distance: Literal["ssim", "mse"] = Field("ssim", description="privacy distance d: 1 - SSIM (paper) or MSE")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam, or SGD momentum 0.9 + weight decay 5e-4 (paper's LFW/CIFAR)")
    defender_lr: float | None = Field(
        None, gt=0, description="the defenders' learning rate; null = 10 x train.lr, the paper's MNIST ratio (defenders 1e-3, model 1e-4)"
    )
    defender_steps: int = Field(1, ge=1, description="defender updates per mini-batch before the model's step (Algorithm 1: 1)")


class FCDefender(nn.Module):
    """h -> (average-pool to <= 8192 values) -> flatten -> 1024 -> ReLU [-> dropout] -> image."""

    def __init__(self, z_shape: tuple[int, ...], image_shape: tuple[int, int, int], dropout: float = 0.0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        pooled = _pool_to_fit(z_shape, FC_MAX_FEATURES)
        self.pool = nn.AdaptiveAvgPool2d(pooled) if pooled != tuple(z_shape[1:]) else nn.Identity()
        layers: list[nn.Module] = [nn.Flatten(), nn.Linear(z_shape[0] * pooled[0] * pooled[1], FC_HIDDEN), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(FC_HIDDEN, int(torch.Size(image_shape).numel())))
        self.body = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(self.pool(h))).view(-1, *self.image_shape)


def build_defender(name: str, client: nn.Module, z_shape: tuple[int, ...], image_shape: tuple[int, int, int]) -> nn.Module:
    if name == "deconv":
        return mirrored_decoder(client, z_shape, image_shape, pool_as="deconv")
    return FCDefender(z_shape, image_shape, dropout=SPARSE_DROPOUT if name == "sparse_fc" else 0.0)


class PrivacyPartitioning(ReleasesClientFeatures, Method):
    Params = PrivacyPartitioningParams
    game_phases = ("train",)

    def __init__(self, ctx: MethodContext, params: PrivacyPartitioningParams):
        super().__init__(ctx, params)
        arch = ctx.arch
        self.client = arch.client()
        self.server = arch.server(ctx.task_classes)
        self.defender_names = DEFENDER_ARCHITECTURES[: params.defenders]
        self.defenders = nn.ModuleList(
            build_defender(name, self.client, arch.z_shape, ctx.image_shape) for name in self.defender_names
        )
        kind = params.optimizer
        decay = SGD_WEIGHT_DECAY if kind == "sgd" else 0.0
        self.optimizers["client"] = make_optimizer(parameters_of(self.client), ctx.lr, kind, decay)
        self.optimizers["server"] = make_optimizer(parameters_of(self.server), ctx.lr, kind, decay)
        defender_lr = params.defender_lr if params.defender_lr is not None else DEFENDER_LR_RATIO * ctx.lr
        for name, defender in zip(self.defender_names, self.defenders, strict=True):
            self.optimizers[f"defender_{name}"] = make_optimizer(parameters_of(defender), defender_lr, kind, decay)

    def proxy_decoders(self) -> dict[str, nn.Module]:
        return dict(zip(self.defender_names, self.defenders, strict=True))

    def distance(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """d(x, x_hat), averaged over the batch."""
        if self.params.distance == "mse":
            return F.mse_loss(reconstruction.float(), x.float())
        return 1 - ssim(reconstruction, x)

    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        h = self.client(x)
        # 1. every defender: `defender_steps` steps on d(x, f_d(h)), h fixed
        for name, defender in zip(self.defender_names, self.defenders, strict=True):
            for _ in range(self.params.defender_steps):
                step(self.distance(x, defender(h.detach())), [self.optimizers[f"defender_{name}"]], defender)
        # 2. the best defender of this batch, with the updated defenders (left unchanged)
        with keeping_buffers(*self.defenders):
            distances = [self.distance(x, defender(h)) for defender in self.defenders]
        best = int(torch.stack([d.detach() for d in distances]).argmin())
        # 3. the model: task loss - lambda * d(x, f_best(h))
        task_loss = F.cross_entropy(self.server(h), y_task)
        loss = task_loss - self.params.lambda_ * distances[best]
        step(loss, [self.optimizers["client"], self.optimizers["server"]], self.client, self.server)
        self.last_best_defender = self.defender_names[best]
        return {"task_loss": task_loss.item(), "defender_distance": distances[best].item()}
