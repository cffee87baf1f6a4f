"""The attack protocol: every attacker of the suite is one `Attack` subclass in one module of
`trainables.attacks.attackers`, registered by name (`trainables.attacks.registry.register`).

An attacker declares:
- `role`: what it attacks, `leakage` (predicts the private attribute from a release; spec list
  `attacks.leakage`, metric `privacy/leak_acc`) or `reconstruction` (rebuilds the input image;
  `attacks.reconstruction`, metrics `recon/<metric>`);
- `threat`: what it knows (`trainables.schema.THREAT_MODELS`, docs/metrics.md). The suite
  reports the strongest attacker overall and the strongest of each threat model present;
- `in_default_suite`: whether `attacks.suite` picks it when a spec lists no attackers.

Its hooks, called by the suite (`trainables.attacks.suite`) in this order:
1. `__init__(ctx)`: build on the frozen method, the attack settings and the class counts;
2. `learner`: for a learned attacker (`LearnedAttack`), the network the suite trains with every
   other learner on one stream of released batches of the attacker data, stopped and selected on
   the validation split (`trainables.attacks.training`); None otherwise;
3. `fit(data, learned)`: anything else it learns or chooses, from the attacker and validation
   splits only (the white-box attacker chooses its TV weight here); `learned` holds the
   learned attackers, trained and at their best validation epoch (the decoder-prior
   inversion starts from a decoder's output);
4. `test_records(data, test)`: per-example records on the test split, from which the suite
   computes every metric and its bootstrap interval: `hits` (one bool per test example) for a
   leakage attacker, `similarity` (per-image scores) for a reconstruction attacker;
5. `gallery(images)`: a reconstruction attacker's reconstructions of the first test images,
   shown in `reconstructions.png` when it is the strongest.

And two class-level hooks that change a spec, not an attack:
- `screening_budget(attacks, fraction)`: the settings of its budget at `fraction` of it, for
  `search.screen` (`trainables.screening`);
- `shrink_for_smoke(attacks)`: shrink its settings in a raw spec's `attacks` section for
  `--smoke` (`sweeps.spec`).
Attackers of one family share settings (every learned attacker's cap is `attacks.epochs`), so
`shrink_for_smoke` must give the same result however often it is applied, and the updates
`screening_budget` computes from the original settings must agree between attackers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from trainables.attacks.releases import ReleasedSplit
from trainables.attacks.training import Attacker
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.methods.base import Method
from trainables.metrics import ImageSimilarity

Role = Literal["leakage", "reconstruction"]
# Which label a learned attacker of a role predicts, and the prefix of its records' names.
ROLE_TARGETS: dict[str, str] = {"leakage": "private", "reconstruction": "image"}
ROLE_PREFIXES: dict[str, str] = {"leakage": "leak", "reconstruction": "recon"}


@torch.no_grad()
def decoded_similarity(decoder: nn.Module, images: TensorSplit, releases: ReleasedSplit) -> ImageSimilarity:
    """The per-image scores of `decoder`'s reconstructions of `images` from their `releases`."""
    similarity = ImageSimilarity(tuple(images.images.shape[1:]), images.images.device)
    for z, targets in releases.batches():
        similarity.update(decoder(z).clamp(0, 1), targets["image"])
    return similarity


@dataclass
class AttackData:
    """The splits one attack needs, each with its task and private labels."""

    attacker: TensorSplit  # what the attackers train on (never test)
    selection: TensorSplit | None  # validation split: early stopping and model selection
    test: TensorSplit
    classes: tuple[int, int]  # (task, private) class counts


@dataclass
class AttackContext:
    method: Method  # frozen, in eval mode
    cfg: AttackConfig
    classes: tuple[int, int]  # (task, private) class counts
    seed: int = 0  # the trial's: an attacker that draws anything of its own seeds it from this


@dataclass
class Records:
    """An attacker's per-example records on the test split: `hits` for a leakage attacker,
    `similarity` for a reconstruction attacker (over all test images, or the first N), and
    any numbers worth logging about the attack (`attack/<name>`)."""

    hits: torch.Tensor | None = None
    similarity: ImageSimilarity | None = None
    bookkeeping: dict[str, float] = field(default_factory=dict)


class Attack(ABC):
    """One attacker (hooks: the module docstring)."""

    name: ClassVar[str]  # set by `registry.register`
    role: ClassVar[Role]
    threat: ClassVar[str]  # one of trainables.schema.THREAT_MODELS
    in_default_suite: ClassVar[bool] = True

    def __init__(self, ctx: AttackContext):
        self.ctx = ctx

    @classmethod
    def record_name(cls) -> str:
        """`leak/<name>` or `recon/<name>`: its records, curves and times are logged under it."""
        return f"{ROLE_PREFIXES[cls.role]}/{cls.name}"

    @property
    def learner(self) -> Attacker | None:
        return None

    def fit(self, data: AttackData, learned: Mapping[str, LearnedAttack]) -> None:  # noqa: B027 (optional hook)
        """Learn or choose from `data.attacker` and `data.selection` (never `data.test`), and
        from the trained `learned` attackers (by record name)."""

    @abstractmethod
    def test_records(self, data: AttackData, test: ReleasedSplit) -> Records:
        """Per-example records on `data.test`, whose releases `test` holds."""

    def gallery(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1] of `images`, the first test images (reconstruction role)."""
        raise NotImplementedError(f"{self.name} is a {self.role} attacker: it reconstructs no image")

    @classmethod
    def screening_budget(cls, attacks: AttackConfig, fraction: float) -> dict[str, Any]:
        """Updates of `attacks` that scale this attacker's budget by `fraction` (none: no budget)."""
        return {}

    @classmethod  # noqa: B027 (optional: an attacker without settings)
    def shrink_for_smoke(cls, attacks: dict) -> None:
        """Shrink this attacker's settings in a raw spec's `attacks` mapping to seconds."""


class LearnedAttack(Attack):
    """A network trained on released z to predict its role's target (the private label, or the
    image), by the suite's shared loop (`trainables.attacks.training`): its peak Adam rate
    (`attacks.lr` sets one for all), where measured to help a smaller batch (`batch_size`: one
    step per chunk of each released batch), the decay `ema` of the moving average of its
    weights that is scored and evaluated (`attacks.ema` sets one for all), and a
    `stopping_scale` that multiplies the suite's patience, decay patience and epoch cap."""

    peak_lr: ClassVar[float]
    batch_size: ClassVar[int | None] = None
    ema: ClassVar[float] = 0.0
    stopping_scale: ClassVar[int] = 1

    def __init__(self, ctx: AttackContext):
        super().__init__(ctx)
        cfg = ctx.cfg
        ema = self.ema if cfg.ema is None else cfg.ema
        self._learner = Attacker(self.build(), ROLE_TARGETS[self.role], cfg.lr or self.peak_lr, self.batch_size, ema,
                                 self.stopping_scale)

    @abstractmethod
    def build(self) -> nn.Module:
        """The untrained network: z of `self.ctx.method.ctx.arch` to logits over the private
        classes (leakage) or to an image of the input's shape (reconstruction)."""

    @property
    def learner(self) -> Attacker:
        return self._learner

    @torch.no_grad()
    def test_records(self, data: AttackData, test: ReleasedSplit) -> Records:
        model = self.learner.model.eval()
        if self.role == "leakage":
            hits = [(model(z).argmax(1) == targets["private"]).cpu() for z, targets in test.batches()]
            return Records(hits=torch.cat(hits))
        return Records(similarity=decoded_similarity(model, data.test, test))

    @torch.no_grad()
    def gallery(self, images: torch.Tensor) -> torch.Tensor:
        if self.role != "reconstruction":
            return super().gallery(images)
        return self.learner.model.eval()(self.ctx.method.release(images)).clamp(0, 1)

    @classmethod
    def screening_budget(cls, attacks: AttackConfig, fraction: float) -> dict[str, Any]:
        return {"epochs": max(1, math.ceil(fraction * attacks.epochs))}

    @classmethod
    def shrink_for_smoke(cls, attacks: dict) -> None:
        attacks["epochs"] = 1
