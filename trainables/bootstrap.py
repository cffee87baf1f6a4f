"""Test-set bootstrap intervals for the final metrics.

Every final metric is a statistic of per-example records kept from evaluation: whether each
test example was classified right, each prediction (MCC), each image's score (SSIM, squared
error, ...). A `Statistic` maps resampling weights, counts (B, n) of how often each of the n
test examples is drawn in each of B resamples, to B values. The logged point value is the
statistic at weights all one, so the value and its interval come from the same code.

Choices:
- The 95 % percentile interval of 1,000 resamples (`attacks.bootstrap`), drawn from a
  generator of its own seeded by the trial seed: the same trial gives the same interval,
  and drawing it moves no other random stream.
- Joint resampling. Every statistic of one attack suite sees the same resampled test
  examples, so a max over attackers (`privacy/leak_acc`, `recon/ssim`) is the max in each
  resample, and Δ is the difference in each resample, never a combination of intervals.
- A statistic computed on the first m test images only (the white-box attacker, m =
  `attacks.whitebox.images`) and one on all n share their draws through a stratified
  resample: [0, m) and [m, n) are resampled separately, each at its own size, so the
  white-box and the decoders compete on the same resampled images in every resample.
- The interval is test-sampling noise only. Training noise (defense and attacker
  initialisation, defense randomness) needs seed replicates. The leakage floor's predictor
  is fit on the attacker split and held fixed; only its test evaluation is resampled.
- Not `torchmetrics.wrappers.BootStrapper`: it keeps one metric state per resample (1,000
  SSIM states per attacker) and resamples each metric on its own, batch by batch, so a max
  over attackers or Δ cannot be resampled jointly.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from trainables.schema import INTERVAL_HIGH, INTERVAL_LOW

LEVEL = 0.95
_CHUNK = 200  # resamples drawn at once: bounds the (chunk, n) weight matrix on large test sets


def interval_keys(key: str) -> tuple[str, str]:
    """The keys of `key`'s interval ends: `privacy/leak_acc:ci95_lo`, `...:ci95_hi`."""
    return f"{key}{INTERVAL_LOW}", f"{key}{INTERVAL_HIGH}"


def _as_scores(values: Tensor) -> Tensor:
    return values.detach().flatten().to("cpu", torch.float64)


class Statistic(ABC):
    """One metric as a function of resampling weights over the first `size` test examples."""

    size: int

    @abstractmethod
    def __call__(self, weights: Tensor) -> Tensor:
        """weights: (B, >= size) float64 counts; returns the B values."""


class Mean(Statistic):
    """The mean of per-example scores: an accuracy (scores 0/1), a mean per-image SSIM."""

    def __init__(self, scores: Tensor):
        self.scores = _as_scores(scores)
        self.size = len(self.scores)

    def __call__(self, weights: Tensor) -> Tensor:
        weights = weights[:, : self.size]
        return weights @ self.scores / weights.sum(1)


class Psnr(Statistic):
    """PSNR over the whole set (data range 1) from per-image sums of squared error."""

    def __init__(self, squared_error: Tensor, pixels: int):
        self.squared_error = _as_scores(squared_error)
        self.pixels = pixels
        self.size = len(self.squared_error)

    def __call__(self, weights: Tensor) -> Tensor:
        weights = weights[:, : self.size]
        mse = weights @ self.squared_error / (weights.sum(1) * self.pixels)
        return -10 * torch.log10(mse)


def _weighted_counts(weights: Tensor, index: Tensor, bins: int) -> Tensor:
    """(B, bins): the resampled count of each value of `index` (one per example)."""
    return weights[:, : len(index)] @ F.one_hot(index.cpu(), bins).to(torch.float64)


class Matthews(Statistic):
    """Multiclass Matthews correlation (Gorodkin's R_K, as torchmetrics computes it)."""

    def __init__(self, preds: Tensor, labels: Tensor, classes: int):
        self.cells = (labels.cpu() * classes + preds.cpu()).long()
        self.classes = classes
        self.size = len(self.cells)

    def __call__(self, weights: Tensor) -> Tensor:
        k = self.classes
        confusion = _weighted_counts(weights, self.cells, k * k).view(-1, k, k)
        true, predicted = confusion.sum(2), confusion.sum(1)
        total = true.sum(1)
        correct = confusion.diagonal(dim1=1, dim2=2).sum(1)
        numerator = correct * total - (true * predicted).sum(1)
        denominator = ((total**2 - (predicted**2).sum(1)) * (total**2 - (true**2).sum(1))).sqrt()
        return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))


class MajorityRate(Statistic):
    """The share of the most frequent label: the chance rate of a constant guess."""

    def __init__(self, labels: Tensor, classes: int):
        self.labels = labels.cpu().long()
        self.classes = classes
        self.size = len(self.labels)

    def __call__(self, weights: Tensor) -> Tensor:
        counts = _weighted_counts(weights, self.labels, self.classes)
        return counts.max(1).values / counts.sum(1)


class Best(Statistic):
    """The strongest of several attackers' values, in each resample."""

    def __init__(self, parts: Sequence[Statistic], higher_is_better: bool):
        self.parts = list(parts)
        self.higher_is_better = higher_is_better
        self.size = max(part.size for part in self.parts)

    def __call__(self, weights: Tensor) -> Tensor:
        values = torch.stack([part(weights) for part in self.parts])
        # an attacker without a value (NaN) does not compete; none with one: no value (inf)
        worst = -math.inf if self.higher_is_better else math.inf
        values = values.nan_to_num(nan=worst, posinf=math.inf, neginf=-math.inf)
        return values.max(0).values if self.higher_is_better else values.min(0).values


class Difference(Statistic):
    def __init__(self, minuend: Statistic, subtrahend: Statistic):
        self.minuend, self.subtrahend = minuend, subtrahend
        self.size = max(minuend.size, subtrahend.size)

    def __call__(self, weights: Tensor) -> Tensor:
        return self.minuend(weights) - self.subtrahend(weights)


def point_values(statistics: dict[str, Statistic]) -> dict[str, float]:
    """Each statistic on the test set as it is; a non-finite value (no metric) is left out."""
    values = {}
    for key, statistic in statistics.items():
        value = float(statistic(torch.ones(1, statistic.size, dtype=torch.float64))[0])
        if math.isfinite(value):
            values[key] = value
    return values


def resample_weights(boundaries: Sequence[int], resamples: int, generator: torch.Generator) -> Tensor:
    """(resamples, n) draw counts, each stratum [boundaries[i-1], boundaries[i]) drawn with
    replacement at its own size; n = boundaries[-1]."""
    n = boundaries[-1]
    weights = torch.zeros(resamples, n, dtype=torch.float64)
    start = 0
    for end in boundaries:
        if end > start:
            drawn = torch.randint(start, end, (resamples, end - start), generator=generator)
            weights.scatter_add_(1, drawn, torch.ones(drawn.shape, dtype=torch.float64))
        start = end
    return weights


def bootstrap_intervals(statistics: dict[str, Statistic], resamples: int, seed: int) -> dict[str, float]:
    """The 95 % percentile interval of every statistic, as `interval_keys` metrics."""
    if not statistics:
        return {}
    boundaries = sorted({statistic.size for statistic in statistics.values()})
    generator = torch.Generator().manual_seed(seed)
    drawn: dict[str, list[Tensor]] = {key: [] for key in statistics}
    for start in range(0, resamples, _CHUNK):
        weights = resample_weights(boundaries, min(_CHUNK, resamples - start), generator)
        for key, statistic in statistics.items():
            drawn[key].append(statistic(weights))
    tail = (1 - LEVEL) / 2
    intervals = {}
    for key, chunks in drawn.items():
        values = torch.cat(chunks)
        values = values[values.isfinite()]
        if len(values) < resamples / 2:  # undefined in most resamples: no interval
            continue
        low, high = torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
        low_key, high_key = interval_keys(key)
        intervals[low_key], intervals[high_key] = low, high
    return intervals
