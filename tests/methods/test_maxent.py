"""Mechanisms of `maxent` (the encoder maximises the adversary's prediction entropy), on
small_cnn and 16x16 RGB inputs."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from trainables.methods.maxent import prediction_entropy

from .helpers import make
from .helpers import rand_batch as batch


def test_maxent_gradients_are_entropy_for_the_encoder_and_likelihood_for_the_adversary():
    method = make("maxent", {"alpha": 1.0}, lr=0.0).train()
    x, y_task, y_private = batch()
    method.train_step(x, y_task, y_private)
    client, adversary = list(method.client.parameters()), list(method.adversary.parameters())
    z = method.client(x)
    logits = method.adversary(z)
    entropy_up = torch.autograd.grad(prediction_entropy(logits), client, retain_graph=True)
    # alpha = 1: the encoder descends -H, i.e. its gradient is exactly -dH/dtheta
    assert all(torch.allclose(p.grad, -g, atol=1e-6) for p, g in zip(client, entropy_up, strict=True))
    likelihood = torch.autograd.grad(F.cross_entropy(method.adversary(z.detach()), y_private), adversary)
    assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(adversary, likelihood, strict=True))



def test_maxent_encoder_steps_raise_the_adversary_prediction_entropy():
    method = make("maxent", {"alpha": 1.0}, lr=1e-2).train()
    for group in method.optimizers["adversary"].param_groups:
        group["lr"] = 0.0  # hold the adversary fixed to see the encoder's direction alone
    x, y_task, y_private = batch(32)

    def entropy() -> float:
        with torch.no_grad():
            return prediction_entropy(method.adversary(method.client(x))).item()

    before = entropy()
    for _ in range(5):
        method.train_step(x, y_task, y_private)
    assert entropy() > before + 1e-3
