"""A decoder that reverses the client's layers one by one (the papers' "reversed local layers").

Privacy Partitioning (App. B/C) builds its defender as "the reversed version of local layers":
each pooling + convolution becomes a stride-2 transposed convolution, each other convolution a
stride-1 one (`pool_as="deconv"`). DeepObfuscator (Table 1) mirrors its obfuscator layer to
layer, each max-pool becoming an up-sampling layer and each convolution a transposed
convolution (`pool_as="upsample"`).

The client must be a plain chain (nested `nn.Sequential`s of convolutions, batch norms,
activations, pools, dropout): small_cnn, pp_cnn, the VGGs and alexnet are. Residual or
inverted-residual clients (resnet18, mobilenet_v2) have no layer-by-layer reversal;
`mirrored_decoder` falls back to the attack suite's `mirror` decoder for them.

Choices made here (the papers give one example each, not a rule):
- Every transposed convolution undoes one client convolution: in = its out-channels, out = its
  in-channels, same kernel and padding, stride = the conv's stride (times 2 when it also undoes
  the pool that followed it, `deconv` mode). Its output is resized (bilinear) to the exact size
  the client's convolution saw when the transposed convolution cannot produce it (odd sizes
  from floor pooling, e.g. 7 -> 3).
- Between layers: batch norm + ReLU (PP's CIFAR defender, DeepObfuscator's decoder style);
  after the last layer (the image channels): a sigmoid, since images here lie in [0, 1] (the
  papers' tanh / clipping is for images normalised to [-1, 1]).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from trainables.models.decoders import MirrorDecoder

_PASSIVE = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.Dropout, nn.Identity)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


class NotReversible(ValueError):
    """The client is not a plain chain of layers."""


def chain_layers(module: nn.Module) -> list[nn.Module]:
    """The client's layers in execution order, if it is a plain chain; else NotReversible."""
    if isinstance(module, nn.Sequential):
        return [layer for child in module for layer in chain_layers(child)]
    if isinstance(module, (nn.Conv2d, *_POOLS, *_PASSIVE)):
        return [module]
    raise NotReversible(f"{type(module).__name__} has no layer-by-layer reversal")


class _Resized(nn.Module):
    def __init__(self, layer: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.layer = layer
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x)
        if tuple(y.shape[-2:]) != self.size:
            y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False)
        return y


def _transposed(conv: nn.Conv2d, stride: tuple[int, int], size: tuple[int, int]) -> nn.Module:
    kernel, padding = conv.kernel_size, conv.padding
    # output_padding that makes the output `stride` times the input when the conv pads "same"
    extra = tuple(min(max(s - k + 2 * p, 0), s - 1) for s, k, p in zip(stride, kernel, padding, strict=True))
    deconv = nn.ConvTranspose2d(
        conv.out_channels, conv.in_channels, kernel, stride=stride, padding=padding, output_padding=extra
    )
    return _Resized(deconv, size)


class ReversedDecoder(nn.Module):
    def __init__(self, client: nn.Module, image_shape: tuple[int, int, int], pool_as: Literal["deconv", "upsample"] = "deconv"):
        super().__init__()
        layers = chain_layers(client)
        if not any(isinstance(layer, nn.Conv2d) for layer in layers):
            raise NotReversible("the client has no convolution to reverse")
        sizes = self._input_sizes(layers, image_shape)
        ops: list[nn.Module] = []
        pending_pool = False
        for layer, size in reversed(list(zip(layers, sizes, strict=True))):
            if isinstance(layer, _POOLS):
                if pool_as == "upsample":
                    ops.append(nn.Upsample(size=size, mode="nearest"))
                else:
                    pending_pool = True
            elif isinstance(layer, nn.Conv2d):
                stride = tuple(s * (2 if pending_pool else 1) for s in layer.stride)
                ops.append(_transposed(layer, stride, size))
                pending_pool = False
        last = max(i for i, op in enumerate(ops) if isinstance(op, _Resized))
        reversed_layers: list[nn.Module] = []
        for i, op in enumerate(ops):
            reversed_layers.append(op)
            if isinstance(op, _Resized) and i != last:
                reversed_layers += [nn.BatchNorm2d(op.layer.out_channels), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*reversed_layers)
        self.image_size = tuple(image_shape[1:])

    @staticmethod
    def _input_sizes(layers: list[nn.Module], image_shape: tuple[int, int, int]) -> list[tuple[int, int]]:
        probe = copy.deepcopy(nn.Sequential(*layers)).eval()
        x = torch.zeros(1, *image_shape)
        sizes = []
        with torch.no_grad():
            for layer in probe:
                sizes.append(tuple(x.shape[-2:]))
                x = layer(x)
        return sizes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.body(z)
        if tuple(out.shape[-2:]) != self.image_size:
            out = F.interpolate(out, size=self.image_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(out)


def mirrored_decoder(
    client: nn.Module,
    z_shape: tuple[int, ...],
    image_shape: tuple[int, int, int],
    pool_as: Literal["deconv", "upsample"] = "deconv",
) -> nn.Module:
    """The client's layer-by-layer reversal, or the `mirror` decoder for non-chain clients."""
    try:
        return ReversedDecoder(client, image_shape, pool_as)
    except NotReversible:
        return MirrorDecoder(z_shape, image_shape)
