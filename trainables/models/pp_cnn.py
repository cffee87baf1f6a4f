"""`pp_cnn`: the face-ID CNN of the Privacy Partitioning paper (Chi et al., Appendix B).

    conv5x5 - conv5x5 - maxpool (pool1) - conv3x3 - conv3x3 - maxpool (pool2)
    - conv3x3 - conv3x3 - maxpool (pool3) - conv3x3 - conv3x3 - maxpool
    - FC 512 - dropout 0.5 - FC 512 - dropout 0.5 - FC (classes)

"each convolutional layer is followed by the ReLU activation and batch-normalization layer".
Split points `pool1`..`pool3`: after the first three max-pools (the paper's partitions).

Choices the paper leaves open, made here:
- Channel widths are not given: 32, 64, 128, 256 for the four conv blocks (doubling per
  block, VGG style).
- Padding: "same" (k // 2), so only the pools shrink the feature maps (64 -> 32 -> 16 -> 8 -> 4).
- Order inside a conv layer: conv -> batch norm -> ReLU (the usual order; the paper's sentence
  lists ReLU and BN without fixing it).
- Head: the paper's "512 -> dropout (0.5) -> 512 -> dropout (0.5) -> 512" read as two hidden
  FC layers of 512 with ReLU and dropout 0.5, then the classifier layer. Its input is the last
  block's map adaptively average-pooled to the side the four pools give the configured image
  size (floor(side / 16), at least 1), flattened; for square inputs of that size the pooling is
  the identity, so the head is the paper's flatten + FC, and it still works at other sizes.
"""

from __future__ import annotations

from torch import nn

from trainables.models.backbone import Backbone

WIDTHS = (32, 64, 128, 256)
KERNELS = (5, 3, 3, 3)
HIDDEN = 512
DROPOUT = 0.5


def _conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(*_conv(cin, cout, kernel), *_conv(cout, cout, kernel), nn.MaxPool2d(2))


def _head(side: int):
    def build(channels: int, classes: int) -> nn.Module:
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(side),
            nn.Flatten(),
            nn.Linear(channels * side * side, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, classes),
        )

    return build


def pp_cnn(in_channels: int, image_size: int) -> Backbone:
    widths = (in_channels, *WIDTHS)
    stages = [_block(widths[i], widths[i + 1], KERNELS[i]) for i in range(len(WIDTHS))]
    side = max(1, image_size // 2 ** len(WIDTHS))
    return Backbone(stages, {f"pool{k}": k for k in range(1, 4)}, WIDTHS[-1], _head(side))
