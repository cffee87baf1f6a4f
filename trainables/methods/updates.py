"""How a method updates its networks: its optimisers, a step that reaches only the modules it
names, and a guard that lets a fixed module see a batch without keeping any trace of it.

- `make_optimizer`: the one optimiser factory of the methods. Adam at lr (the platform's
  default, the Noisy ARL and MNIST settings of the papers), or SGD with momentum 0.9 (DISCO's
  App. A, Privacy Partitioning's LFW/CIFAR setting, which adds weight decay 5e-4).
- `step(loss, optimizers, *modules)`: back-propagate into the named modules' parameters only.
- `keeping_buffers(*modules)`: a module that is "fixed" in an update step still runs in train
  mode (batch statistics, as in the steps that train it), but its buffers (batch-norm running
  statistics) are restored afterwards, so a step leaves a fixed module exactly as it was.
- `OWN_DECODER_LR_RATIO`: a method's own reconstruction adversary (adv_recon's Dec,
  DeepObfuscator's AR) trains at this multiple of `train.lr` unless its params set a rate:
  at `train.lr` neither came within .05 SSIM of the suite's fresh decoders, which train at
  1e-2 (each method's docstring gives its measurement).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

SGD_MOMENTUM = 0.9
OWN_DECODER_LR_RATIO = 10.0


def make_optimizer(
    parameters: Iterable[nn.Parameter], lr: float, kind: Literal["adam", "sgd"] = "adam", weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam at `lr`, or SGD with momentum 0.9 at `lr`; both with L2 `weight_decay`."""
    parameters = list(parameters)
    if kind == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=SGD_MOMENTUM, weight_decay=weight_decay)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


@contextmanager
def keeping_buffers(*modules: nn.Module) -> Iterator[None]:
    """Run `modules` in their current mode, then restore every buffer they had.

    The saved copies are put back as new tensor objects (not copied in place), so autograd
    graphs that saved the updated statistics during the run stay valid for a later backward.
    """
    saved = [
        (owner, name, buffer.clone())
        for module in modules
        for owner in module.modules()
        for name, buffer in owner._buffers.items()
        if buffer is not None
    ]
    try:
        yield
    finally:
        for owner, name, value in saved:
            owner._buffers[name] = value


def parameters_of(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for module in modules for p in module.parameters() if p.requires_grad]


def step(loss: torch.Tensor, optimizers: list[torch.optim.Optimizer], *modules: nn.Module) -> None:
    """Back-propagate `loss` into the parameters of `modules` only, then step `optimizers`."""
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    parameters = parameters_of(*modules)
    if not parameters:
        return
    torch.autograd.backward(loss, inputs=parameters)
    for optimizer in optimizers:
        optimizer.step()
