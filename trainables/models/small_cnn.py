"""A four-block CNN for fast CPU work on small images (splits 1-4 after each block)."""

from __future__ import annotations

from torch import nn

from trainables.models.backbone import Backbone

WIDTHS = (32, 64, 64, 128)


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def small_cnn(in_channels: int, image_size: int) -> Backbone:
    widths = (in_channels, *WIDTHS)
    # Pool after blocks 1, 2 and 4: 28x28 -> 14 -> 7 -> 7 -> 3.
    stages = [_block(widths[i], widths[i + 1], pool=i != 2) for i in range(4)]
    return Backbone(stages, {str(k): k for k in range(1, 5)}, WIDTHS[-1])
