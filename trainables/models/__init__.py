"""Backbone registry and the split architecture: (backbone, split, input shape) -> client, server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import torch
from torch import nn

from trainables.errors import InputError
from trainables.models import torchvision_backbones as tvb
from trainables.models.backbone import Backbone
from trainables.models.pp_cnn import pp_cnn
from trainables.models.small_cnn import small_cnn

# Split "0": nothing runs on the client, z is the (possibly noised) image itself.
INPUT_SPLIT = "0"

BACKBONES: dict[str, Callable[..., Backbone]] = {
    "small_cnn": small_cnn,
    "resnet18": tvb.resnet18,
    "vgg11": tvb.vgg11,
    "vgg16": tvb.vgg16,
    "vgg19": tvb.vgg19,
    "mobilenet_v2": tvb.mobilenet_v2,
    "alexnet": tvb.alexnet,
    "pp_cnn": pp_cnn,
}


def _build_backbone(name: str, in_channels: int, image_size: int, options: dict) -> Backbone:
    if name not in BACKBONES:
        raise InputError(f"model.backbone: unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")
    try:
        return BACKBONES[name](in_channels, image_size, **options)
    except TypeError as error:
        raise InputError(f"model: bad option for backbone {name!r}: {error}") from None


@cache
def _split_names(backbone: str, options: tuple[tuple[str, object], ...]) -> tuple[str, ...]:
    # Building a torchvision backbone takes about a second (VGG's classifier); the names of
    # its split points do not change, and every spec check and trial asks for them.
    return (INPUT_SPLIT, *_build_backbone(backbone, 3, 32, dict(options)).splits)


def check_split(backbone: str, split: str, options: dict | None = None) -> None:
    """The backbone exists and has this split point (independent of the input size)."""
    splits = list(_split_names(backbone, tuple(sorted((options or {}).items()))))
    if str(split) not in splits:
        raise InputError(
            f"model.split: backbone {backbone!r} has no split point {split!r}; its split points are {splits}."
        )


@dataclass
class SplitArchitecture:
    """Builds independent, freshly initialised client and server networks for one split.

    Construction checks the split exists and that the client's output keeps a non-empty
    spatial size for this input, so a bad (backbone, split, image size) fails before training.
    """

    backbone: str
    split: str
    input_shape: tuple[int, int, int]
    options: dict = field(default_factory=dict)
    z_shape: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.split = str(self.split)
        check_split(self.backbone, self.split, self.options)
        self.z_shape = self._probe()

    def _build(self) -> Backbone:
        return _build_backbone(self.backbone, self.input_shape[0], self.input_shape[1], self.options)

    def _probe(self) -> tuple[int, ...]:
        backbone = self._build()
        x = torch.zeros(1, *self.input_shape)
        try:
            with torch.no_grad():
                z = backbone.client(self.split).eval()(x)
                nn.Sequential(*backbone.stages).eval()(x)
        except RuntimeError as error:
            raise InputError(
                f"model: backbone {self.backbone!r} at split {self.split!r} does not fit "
                f"{self.input_shape[1]}x{self.input_shape[2]} images ({error}). Use a smaller "
                "backbone/earlier split or resize the dataset (dataset.options.image_size)."
            ) from None
        return tuple(z.shape[1:])

    def client(self) -> nn.Module:
        return self._build().client(self.split)

    def server(self, classes: int) -> nn.Module:
        return self._build().server(self.split, classes)


__all__ = ["BACKBONES", "SplitArchitecture"]
