"""The base of the methods whose client computes `obfuscate(client(x))`: the noise baselines,
random pruning, the DP mechanisms, MaxEnt, Noisy ARL and the undefended `none`. Each trains a
client, the deployed server and a proxy adversary in one backward pass; the proxy adversary
plays against the client (Noisy ARL, MaxEnt) or only observes (the rest), so every method of
the family reports `train/proxy_ce` and `privacy/proxy_leak_acc` the same way."""

from __future__ import annotations

from abc import abstractmethod

import torch
from pydantic import BaseModel
from torch import nn
from torch.nn import functional as F

from trainables.methods.base import Method, MethodContext, ReleaseParts
from trainables.methods.updates import make_optimizer, parameters_of


class _ScaledGradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


def reverse_gradient(z: torch.Tensor, weight: float) -> torch.Tensor:
    """Identity forward; backward multiplies the gradient by -weight (weight 0 detaches)."""
    return z.detach() if weight == 0 else _ScaledGradientReversal.apply(z, weight)


class ObfuscationMethod(Method):
    """Client M1, deployed server M2 and a proxy adversary A (a copy of the server
    architecture with the private head), each with its own Adam optimiser, trained by
    Algorithm 1 of the Noisy ARL paper:

        g_T = d L_t / d theta_T,  g_A = d L_leak / d theta_A,
        g_O = d (L_t - adversary_weight * L_leak) / d theta_O,

    computed in one backward pass through a scaled gradient-reversal layer in front of A,
    and applied together. With `adversary_weight() == 0` the adversary only observes z
    (a detached monitor that gives `val/proxy_leak_acc`), i.e. task-only training.
    Subclasses define `obfuscate(x)`: what the client computes, randomness included.
    """

    def __init__(self, ctx: MethodContext, params: BaseModel):
        super().__init__(ctx, params)
        arch = self.ctx.arch  # the context the class's `releases` asks for
        self.client = arch.client()
        self.server = arch.server(ctx.task_classes)
        self.adversary = arch.server(ctx.private_classes)
        for name in ("client", "server", "adversary"):
            parameters = parameters_of(getattr(self, name))
            if parameters:  # an identity client (split "0") has none
                self.optimizers[name] = make_optimizer(parameters, ctx.lr)

    def adversary_weight(self) -> float:
        return 0.0

    @abstractmethod
    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        """Turn the client's features into z (noise, pruning...)."""

    def release(self, x: torch.Tensor) -> torch.Tensor:
        return self.obfuscate(self.client(x))

    def release_parts(self) -> ReleaseParts:
        """The frozen client's features, then `obfuscate`'s randomness."""
        return ReleaseParts(self.client, self.obfuscate) if self.release_is_random() else super().release_parts()

    def serve(self, z: torch.Tensor) -> torch.Tensor:
        return self.server(z)

    def proxy_leak(self, z: torch.Tensor) -> torch.Tensor:
        return self.adversary(z)

    def client_network(self) -> nn.Module:
        return self.client

    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        z = self.release(x)
        task_loss = F.cross_entropy(self.server(z), y_task)
        proxy_ce = F.cross_entropy(self.adversary(reverse_gradient(z, self.adversary_weight())), y_private)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        (task_loss + proxy_ce).backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
        return {"task_loss": task_loss.item(), "proxy_ce": proxy_ce.item()}
