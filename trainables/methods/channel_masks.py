"""Channel masks shared by DISCO and its same-budget control, random pruning: both keep
exactly round((1 - R) * C) channels per input; DISCO chooses them by a learned score, random
pruning by a uniform random one, so the two differ only in how the kept channels are chosen."""

from __future__ import annotations

import torch


def kept_channels(channels: int, ratio: float) -> int:
    """round((1 - R) * C): the channels a release keeps (the same count as random pruning)."""
    return round((1 - ratio) * channels)


def hard_channel_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """1 on the top round((1 - R) * C) scores of each row, 0 elsewhere."""
    keep = kept_channels(scores.shape[1], ratio)
    mask = torch.zeros_like(scores)
    if keep > 0:
        mask.scatter_(1, scores.topk(keep, dim=1).indices, 1.0)
    return mask


def random_channel_mask(batch: int, channels: int, ratio: float, device: torch.device) -> torch.Tensor:
    """A uniformly random set of round((1 - R) * C) kept channels per row."""
    return hard_channel_mask(torch.rand(batch, channels, device=device), ratio)
