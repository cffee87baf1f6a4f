"""Reconstruction decoders built from the shapes of z and of the input.

- `mirror`: a 3x3 conv, then one stride-2 transposed conv per factor of two between z's
  and the image's resolution (the mirrored decoder of DeepObfuscator / Noisy ARL), a final
  resize to the exact image size, a 3x3 conv to the image channels and a sigmoid.
- `fc`: a fully-connected decoder. z is first average-pooled to at most FC_MAX_FEATURES
  values (a full 64x32x32 map would need a 65k-by-1k weight matrix); the two hidden
  layers are 1024 wide.
Outputs are images in [0, 1]. The attack suite's registry of them is
`trainables.attacks.attackers.decoders`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

FC_MAX_FEATURES = 8192
FC_HIDDEN = 1024


class MirrorDecoder(nn.Module):
    def __init__(self, z_shape: tuple[int, ...], image_shape: tuple[int, int, int]):
        super().__init__()
        cz, hz, _ = z_shape
        c, h, _ = image_shape
        self.image_size = image_shape[1:]
        width = max(64, min(cz, 256))
        layers: list[nn.Module] = [nn.Conv2d(cz, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        for _ in range(max(0, math.ceil(math.log2(h / hz)))):
            out = max(32, width // 2)
            layers += [nn.ConvTranspose2d(width, out, 4, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            width = out
        self.body = nn.Sequential(*layers)
        self.to_image = nn.Conv2d(width, c, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.body(z)
        if features.shape[-2:] != self.image_size:
            features = F.interpolate(features, size=self.image_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.to_image(features))


def _pool_to_fit(z_shape: tuple[int, ...], limit: int) -> tuple[int, int]:
    cz, hz, wz = z_shape
    side_h, side_w = hz, wz
    while cz * side_h * side_w > limit and (side_h > 1 or side_w > 1):
        side_h, side_w = max(1, side_h // 2), max(1, side_w // 2)
    return side_h, side_w


class FCDecoder(nn.Module):
    def __init__(self, z_shape: tuple[int, ...], image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        pooled = _pool_to_fit(z_shape, FC_MAX_FEATURES)
        self.pool = nn.AdaptiveAvgPool2d(pooled) if pooled != tuple(z_shape[1:]) else nn.Identity()
        features = z_shape[0] * pooled[0] * pooled[1]
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, FC_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(FC_HIDDEN, FC_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(FC_HIDDEN, math.prod(image_shape)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(self.pool(z))).view(-1, *self.image_shape)

