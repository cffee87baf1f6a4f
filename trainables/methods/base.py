"""The protocol every defense implements, and the pieces most of them share.

A method owns its networks and optimizers. The trainer only calls `train_step` on batches
of the train split; the attack suite only calls `release` on a frozen method; the deployed
utility is `serve(release(x))`. Adding a method never touches either of them. Optional
hooks with safe defaults:
- `start_training`: the trainer hands over the defense's train split once, before the first
  step, for methods that draw batches of their own (adv_recon's decoder trains on full
  batches of its share X2);
- `phases` / `start_phase`: the method's training phases in order (default one, `train`);
  the trainer runs each until its validation signals converge or the cap
  (`trainables/convergence.py`), and announces each with `start_phase` (again on a resume);
- `validation_release`: the release the trainer validates the current phase on (default
  `release`; DISCO's first phase trains the unpruned features, so it is validated on them);
- `pretrained_phases`: the phases a task model trained without defense stands in for
  (`train.init: pretrained`), which the trainer skips after loading it into
  `task_networks()` (client and deployed server);
- `at_release_ratio`: an inference-time pruning ratio the attack suite can set on the frozen
  method (`attacks.release_ratios`);
- `release_is_random`: whether `release` draws defense randomness (default True, so the
  attack suite redraws it per batch; a method whose release is a function of x alone says
  False and its releases are computed once per split);
- `release_for_inversion`: the release the white-box attacker differentiates through
  (default `release`; a method whose release is not differentiable in x gives a
  straight-through version);
- `release_parts`: the release as `randomize(features(x))`, features a function of x alone,
  which the attack suite computes once per split (default: the images are the features of
  a random release, the release itself those of a deterministic one);
- `proxy_leak` / `proxy_decoders`: the method's own training-time adversaries, which the
  suite evaluates frozen on test (`privacy/proxy_leak_acc`, `recon/proxy_ssim`) beside the
  fresh attackers, to show a defense that only fools its own adversary.
A class may also declare its same-budget `control` (`SameBudgetControl`): the baseline that
spends the same budget without the method's learning (DISCO: `random_pruning` at the same
pruning ratio and split). Its runs are tagged with it, `sweeps confirm --controls` runs the
control beside every finished configuration, and the analysis summary pairs the two.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from torch import nn

from trainables.config import refuse_boolean_as_number
from trainables.data.batches import TensorSplit
from trainables.models import INPUT_SPLIT, SplitArchitecture


class NoParams(BaseModel):
    """A method's hyperparameters: unknown ones are errors, numbers finite, no boolean as a number."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_boolean_as_number(cls, value, info)


@dataclass
class MethodContext:
    """What a method is built from: the split architecture, the label spaces, the optimiser lr."""

    arch: SplitArchitecture
    task_classes: int
    private_classes: int
    lr: float

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.arch.input_shape

    def at_input(self) -> MethodContext:
        """The same context split at "0": nothing on the client, the whole backbone on the server."""
        arch = SplitArchitecture(self.arch.backbone, INPUT_SPLIT, self.arch.input_shape, self.arch.options)
        return MethodContext(arch, self.task_classes, self.private_classes, self.lr)


@dataclass(frozen=True)
class SameBudgetControl:
    """`method` run at the same values of the `shared` params (and the same split, data and
    schedule): what the declaring method must beat for its learning to count."""

    method: str
    shared: tuple[str, ...]

    @property
    def shared_paths(self) -> list[str]:
        """The shared params as spec paths (`params.<name>`), as assignments and run tables name them."""
        return [f"params.{name}" for name in self.shared]


Release = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ReleaseParts:
    """release(x) = randomize(features(x)): `features` a function of x alone, `randomize` the
    defense randomness (None: the release is `features(x)`)."""

    features: Release
    randomize: Release | None = None

    def release(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        return z if self.randomize is None else self.randomize(z)


class Method(nn.Module, ABC):
    """One defense. `Params` is its pydantic hyperparameter model (the tunable knobs)."""

    Params: ClassVar[type[BaseModel]] = NoParams
    control: ClassVar[SameBudgetControl | None] = None
    # "image": the method releases a randomised image whatever model.split says (its context
    # is split at "0", the whole backbone on the server); "features": features at model.split
    releases: ClassVar[Literal["features", "image"]] = "features"
    # the training phases in order, each run to convergence (trainables/convergence.py)
    phases: ClassVar[tuple[str, ...]] = ("train",)
    # the phases a pretrained task model replaces (`train.init: pretrained`): they are skipped
    pretrained_phases: ClassVar[tuple[str, ...]] = ()
    # the phases in which the client trains against the method's own adversaries: a game, whose
    # proxies co-adapt with the client (the trainer then watches a shadow attacker too,
    # trainables/shadow.py) and which the trainer anneals (trainables/convergence.py)
    game_phases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: MethodContext, params: BaseModel):
        super().__init__()
        self.ctx = ctx.at_input() if self.releases == "image" else ctx
        self.params = params
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.phase = self.phases[0]  # set by the trainer through `start_phase`

    @classmethod
    def hyperparameters(cls) -> list[str]:
        return [field.alias or name for name, field in cls.Params.model_fields.items()]

    @abstractmethod
    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a train batch; returns `task_loss` (the deployed task's
        cross-entropy) and any other losses under names that say what they are
        (`proxy_ce`, `defender_distance`, ...): the trainer logs each epoch mean as `train/<name>`."""

    @abstractmethod
    def release(self, x: torch.Tensor) -> torch.Tensor:
        """The representation z the client sends, with fresh defense randomness on every call."""

    @abstractmethod
    def serve(self, z: torch.Tensor) -> torch.Tensor:
        """Task logits of the deployed server model."""

    def proxy_leak(self, z: torch.Tensor) -> torch.Tensor | None:
        """Private-attribute logits of the method's own proxy adversary, if it has one."""
        return None

    def proxy_decoders(self) -> dict[str, nn.Module]:
        """The method's own training-time reconstruction adversaries (z -> image), by name."""
        return {}

    def release_is_random(self) -> bool:
        """True when two releases of the same x can differ (defense randomness)."""
        return True

    def release_for_inversion(self, x: torch.Tensor) -> torch.Tensor:
        """`release(x)` with a gradient in x, for the white-box inversion attacker."""
        return self.release(x)

    def release_parts(self) -> ReleaseParts:
        """The frozen release as `randomize(features(x))`, so that the attack suite computes
        the features once per split and draws only the randomness per batch. The default
        knows no deterministic part of a random release: its features are the images."""
        if self.release_is_random():
            return ReleaseParts(torch.clone, self.release)
        return ReleaseParts(self.release)

    @abstractmethod
    def client_network(self) -> nn.Module:
        """Every module that is deployed on the client (for its size in MB)."""

    def start_training(self, train: TensorSplit, batch_size: int) -> None:
        """Called by the trainer once, before the first `train_step` (and again when a trial
        is rebuilt to resume), with the split the defense trains on (on the trial's device)
        and the train batch size; methods that draw batches of their own keep what they need."""

    def start_phase(self, phase: str) -> None:
        """Called by the trainer when phase `phase` (one of `phases`) begins, and again with the
        current phase when a trial is rebuilt to resume: what a phase needs to continue (step
        counters) lives in the state dict, not here. Before any call a method is in `phases[0]`.
        The default keeps `self.phase`, which a method with phases reads in `train_step`."""
        self.phase = phase

    def validation_release(self, x: torch.Tensor) -> torch.Tensor:
        """What the trainer's per-epoch validation serves and shows the proxies: the release,
        unless the current phase trains another path."""
        return self.release(x)

    def task_networks(self) -> tuple[nn.Module, nn.Module]:
        """(client, deployed server): the task model's two halves, where `train.init:
        pretrained` loads the task model trained without defense."""
        return self.client, self.server

    def at_release_ratio(self, ratio: float) -> AbstractContextManager | None:
        """Inference-time pruning ratio: a context manager inside which `release` prunes a
        fraction `ratio` instead of the trained one (the frozen networks unchanged), or None
        when the method has no such knob (the default)."""
        return None

    @classmethod
    def supports_release_ratio(cls) -> bool:
        return cls.at_release_ratio is not Method.at_release_ratio


class ReleasesClientFeatures:
    """Mixin for methods whose client sends its features unchanged (`self.client`) to the
    deployed `self.server`: the defense lives entirely in how the client was trained."""

    def release(self, x: torch.Tensor) -> torch.Tensor:
        return self.client(x)

    def release_is_random(self) -> bool:
        return False

    def serve(self, z: torch.Tensor) -> torch.Tensor:
        return self.server(z)

    def client_network(self) -> nn.Module:
        return self.client


def clamp_straight_through(values: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """clamp(values) in the forward pass, the identity's gradient in the backward pass."""
    return values + (values.clamp(low, high) - values).detach()


@contextmanager
def overriding(obj: Any, name: str, value: Any) -> Iterator[None]:
    """Temporarily set `obj.name = value` (restored on exit, also on error)."""
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)
