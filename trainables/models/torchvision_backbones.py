"""torchvision backbones cut into stages at the papers' split points.

Choices the papers leave open, made here:
- The first convolution is rebuilt for the dataset's channel count (1 for Fashion-MNIST).
- resnet18 `cifar` stem: 3x3 stride-1 conv and no max-pool (the usual CIFAR ResNet);
  `imagenet` stem: torchvision's 7x7 stride-2 conv and max-pool. Splits 1-4 are after
  layer1-layer4 (the papers' RN18_k).
- VGG uses torchvision's batch-norm variants (`vgg11_bn`...): plain VGG trains poorly from
  scratch at the papers' Adam 1e-3. Splits `pool1`..`pool5` are after each max-pool.
- mobilenet_v2 splits 1-5 are after its five resolution stages (features 1, 3, 6, 13, 18).
- alexnet splits `pool1`..`pool3` are after its three max-pools.
- Every server head is global average pooling + one linear layer (the CIFAR-style head),
  not torchvision's 4096-wide classifiers, so the head works at any input size.
All weights are randomly initialised: the papers train from scratch. VGG and AlexNet build
only their feature stacks (`_features`), initialised as torchvision initialises them: their
unused classifiers (58-120M parameters) took about a second to initialise, 11 builds a
DeepObfuscator trial, 12 of the 27 s of its smoke trial.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models as tvm

from trainables.models.backbone import Backbone


def _conv_like(conv: nn.Conv2d, in_channels: int, **overrides) -> nn.Conv2d:
    kwargs = dict(
        kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding, bias=conv.bias is not None
    )
    kwargs.update(overrides)
    return nn.Conv2d(in_channels, conv.out_channels, **kwargs)


def resnet18(in_channels: int, image_size: int, stem: str | None = None) -> Backbone:
    net = tvm.resnet18(weights=None)
    stem = stem or ("cifar" if image_size <= 64 else "imagenet")
    if stem == "cifar":
        first = nn.Sequential(
            _conv_like(net.conv1, in_channels, kernel_size=3, stride=1, padding=1), net.bn1, net.relu
        )
    else:
        first = nn.Sequential(_conv_like(net.conv1, in_channels), net.bn1, net.relu, net.maxpool)
    stages = [first, net.layer1, net.layer2, net.layer3, net.layer4]
    return Backbone(stages, {str(k): k + 1 for k in range(1, 5)}, 512)


def _cut_at_pools(features: nn.Sequential) -> list[nn.Module]:
    stages, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    return stages


def _features(factory, init: Callable[[nn.Module], None]) -> nn.Sequential:
    """`factory(weights=None).features`, built on the meta device (the classifier never
    allocates) and then initialised module by module with `init`."""
    with torch.device("meta"):
        features = factory(weights=None).features
    features = features.to_empty(device="cpu")
    for module in features.modules():
        init(module)
    return features


def _vgg_init(module: nn.Module) -> None:
    """torchvision's `VGG.__init__` scheme for the feature layers."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        module.reset_parameters()  # weight 1, bias 0 and the running statistics


def _default_init(module: nn.Module) -> None:
    """What each layer's own constructor does (AlexNet has no scheme of its own)."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()


def _vgg(factory, in_channels: int) -> Backbone:
    features = _features(factory, _vgg_init)
    features[0] = _conv_like(features[0], in_channels)
    stages = _cut_at_pools(features)
    return Backbone(stages, {f"pool{k}": k for k in range(1, len(stages) + 1)}, 512)


def vgg11(in_channels: int, image_size: int) -> Backbone:
    return _vgg(tvm.vgg11_bn, in_channels)


def vgg16(in_channels: int, image_size: int) -> Backbone:
    return _vgg(tvm.vgg16_bn, in_channels)


def vgg19(in_channels: int, image_size: int) -> Backbone:
    return _vgg(tvm.vgg19_bn, in_channels)


MOBILENET_STAGE_ENDS = (2, 4, 7, 14, 19)


def mobilenet_v2(in_channels: int, image_size: int) -> Backbone:
    features = tvm.mobilenet_v2(weights=None).features
    features[0][0] = _conv_like(features[0][0], in_channels)
    bounds = (0, *MOBILENET_STAGE_ENDS)
    stages = [features[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    return Backbone(stages, {str(k): k for k in range(1, 6)}, 1280)


def alexnet(in_channels: int, image_size: int) -> Backbone:
    features = _features(tvm.alexnet, _default_init)
    features[0] = _conv_like(features[0], in_channels)
    stages = _cut_at_pools(features)
    return Backbone(stages, {f"pool{k}": k for k in range(1, len(stages) + 1)}, 256)
