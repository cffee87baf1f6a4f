"""Builders and checks shared by the method tests: small_cnn on 16x16 RGB inputs.

The test files bind these to the short names their tests use (`make`, `batch`, `grads`), so
that each family of tests keeps the data it was written for:

- the feature-release methods (noisy_arl, none, input_noise, activation_noise,
  random_pruning) use 3 task and 4 private classes (`make_3x4`, `rand_batch_3x4`), so a
  head's output shape tells which head it is, and read the gradients a step left behind
  (`accumulated_grads`);
- disco, maxent and the DP methods use 3 and 3 classes and uniform images (`make`,
  `rand_batch`);
- the reconstruction defenses use 3 and 3 classes and 8-bit images (`make`, `pixel_batch`)
  and recompute gradients of a loss (`loss_grads`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from trainables.methods import MethodContext, method_class
from trainables.models import SplitArchitecture

IMAGE = (3, 16, 16)
TASK_CLASSES, PRIVATE_CLASSES = 3, 4


def make(name: str, params: dict | None = None, split: str = "2", lr: float = 1e-3, backbone: str = "small_cnn",
         image=IMAGE, seed: int = 0, classes=(3, 3)):
    torch.manual_seed(seed)
    cls = method_class(name)
    arch = SplitArchitecture(backbone, split, image)
    return cls(MethodContext(arch, classes[0], classes[1], lr), cls.Params.model_validate(params or {}))


def make_3x4(name: str, params: dict | None = None, split: str = "2", seed: int = 0):
    """`make` with TASK_CLASSES task and PRIVATE_CLASSES private classes."""
    return make(name, params, split, seed=seed, classes=(TASK_CLASSES, PRIVATE_CLASSES))


def rand_batch(n: int = 16, seed: int = 0, classes=(3, 3)):
    """Uniform images in [0, 1) with task and private labels."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, *IMAGE, generator=g),
        torch.randint(0, classes[0], (n,), generator=g),
        torch.randint(0, classes[1], (n,), generator=g),
    )


def rand_batch_3x4(n: int = 32, seed: int = 0):
    """`rand_batch` with TASK_CLASSES task and PRIVATE_CLASSES private labels."""
    return rand_batch(n, seed, (TASK_CLASSES, PRIVATE_CLASSES))


def images(n: int, seed: int = 0, image=IMAGE) -> torch.Tensor:
    """8-bit images scaled to [0, 1], as the data pipeline hands them over."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *image), generator=g).float() / 255


def pixel_batch(n: int = 16, seed: int = 0, image=IMAGE):
    """`images` with task and private labels (3 classes each)."""
    g = torch.Generator().manual_seed(seed + 1000)
    return images(n, seed, image), torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)


def accumulated_grads(module: torch.nn.Module) -> list[torch.Tensor]:
    """The gradients left in `module`'s parameters (zeros where there is none)."""
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def assert_client_gets_only_the_task_gradient(method, x, y_task, y_private, seed: int) -> None:
    """After one `train_step` of `method`, its client's gradient is exactly d task loss / d
    client of a copy taken before the step, under the same defense randomness (`seed`)."""
    before = copy.deepcopy(method)
    torch.manual_seed(seed)
    method.train_step(x, y_task, y_private)
    torch.manual_seed(seed)
    z = before.release(x)
    expected = torch.autograd.grad(F.cross_entropy(before.server(z), y_task), list(before.client.parameters()))
    for g, e in zip(accumulated_grads(method.client), expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


def loss_grads(loss: torch.Tensor, module: nn.Module) -> list[torch.Tensor]:
    """d loss / d parameters of `module`, keeping the graph."""
    return list(torch.autograd.grad(loss, list(module.parameters()), retain_graph=True))


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed_entries(module: nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def param_names(module: nn.Module) -> set[str]:
    return {k for k, _ in module.named_parameters()}


def close(got: list[torch.Tensor | None], expected: list[torch.Tensor], atol: float = 1e-6) -> bool:
    return all(g is not None and torch.allclose(g, e, atol=atol, rtol=1e-4) for g, e in zip(got, expected, strict=True))
