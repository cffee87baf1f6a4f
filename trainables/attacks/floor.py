"""`privacy/leak_floor`: the leakage that perfect utility cannot avoid.

A server that predicts the task perfectly hands an attacker the task label, and the task
label alone predicts the private attribute better than chance whenever the two are
correlated. The floor is the test accuracy of the best predictor of the private attribute
from the task label alone: for each task value, the most frequent private value among the
attacker's training examples with that task value (ties: the smallest value). On
Fashion-MNIST `coarse`/`class` it is about 0.2 (one garment of six apparel classes, one of
four footwear/bag classes), not the 0.1 chance rate: no defense with full utility can leak
less.
"""

from __future__ import annotations

import torch


def leak_floor_hits(
    train_task: torch.Tensor, train_private: torch.Tensor, test_task: torch.Tensor, test_private: torch.Tensor,
    task_classes: int, private_classes: int,
) -> torch.Tensor:
    """Per test example, whether the floor's predictor guesses its private value (their mean
    is the floor)."""
    counts = torch.zeros(task_classes, private_classes, dtype=torch.int64, device=train_task.device)
    counts.index_put_((train_task, train_private), torch.ones_like(train_task), accumulate=True)
    guess = counts.argmax(dim=1)  # first maximum: the smallest private value on ties
    return guess[test_task] == test_private
