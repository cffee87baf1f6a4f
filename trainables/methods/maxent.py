"""`maxent`: Maximum-Entropy Adversarial Representation Learning (MaxEnt-ARL; Roy & Boddeti,
CVPR 2019), the baseline of the Noisy ARL, DISCO and DeepObfuscator comparisons.

The encoder (client) E, the target predictor T (deployed server) and the proxy adversary A
(server architecture with the private head) each have their own Adam optimiser:

    A:  min  CE(A(E(x)), y_private)                     (z detached: A never shapes E)
    T:  min  CE(T(E(x)), y_task)
    E:  min  (1 - alpha) * CE(T(E(x)), y_task) - alpha * H(softmax(A(E(x))))

i.e. the encoder keeps utility while driving the adversary's prediction towards the
uniform distribution (maximum entropy) instead of towards wrong labels (the likelihood game
of ML-ARL / Noisy ARL); alpha in [0, 1] trades one for the other.

Choices the comparison papers leave open (the MaxEnt paper itself is not in papers/):
- The convex (1 - alpha, alpha) weighting and alpha's default 0.1 follow the MaxEnt-ARL
  authors' public reference implementation; H is the Shannon entropy in nats, averaged over
  the batch.
- Each loss is back-propagated only into the parameters it trains (one forward pass, three
  `torch.autograd.backward(inputs=...)` calls), and the three updates are applied together,
  as in Noisy ARL's Algorithm 1 (same batch, same z).
- Architecture: the platform's split model (client = backbone up to `model.split`, server
  and adversary = the rest + a head). Noisy ARL ran MaxEnt with the full ResNet-18 as the
  client and a 128-d embedding; the closest split here is RN18 split 4 (server = the head).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch.nn import functional as F

from trainables.methods.base import NoParams
from trainables.methods.obfuscation import ObfuscationMethod


class MaxEntParams(NoParams):
    alpha: float = Field(0.1, ge=0, le=1, description="weight of the adversary-entropy term in the encoder loss")


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of softmax(logits) over the batch."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


class MaxEnt(ObfuscationMethod):
    Params = MaxEntParams
    game_phases = ("train",)

    def obfuscate(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def release_is_random(self) -> bool:
        return False

    def encoder_loss(self, task_loss: torch.Tensor, adversary_logits: torch.Tensor) -> torch.Tensor:
        alpha = self.params.alpha
        return (1 - alpha) * task_loss - alpha * prediction_entropy(adversary_logits)

    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        z = self.release(x)
        task_loss = F.cross_entropy(self.server(z), y_task)
        adversary_logits = self.adversary(z)
        proxy_ce = F.cross_entropy(adversary_logits, y_private)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(task_loss, inputs=list(self.server.parameters()), retain_graph=True)
        torch.autograd.backward(proxy_ce, inputs=list(self.adversary.parameters()), retain_graph=True)
        client_params = list(self.client.parameters())
        if client_params:  # split "0" has no encoder to train
            torch.autograd.backward(self.encoder_loss(task_loss, adversary_logits), inputs=client_params)
        for optimizer in self.optimizers.values():
            optimizer.step()
        return {"task_loss": task_loss.item(), "proxy_ce": proxy_ce.item()}
