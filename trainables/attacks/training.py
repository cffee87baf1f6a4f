"""Training the learned attackers to convergence on a frozen release.

Every attacker (leakage classifiers, reconstruction decoders, the retrained utility model)
trains on the same stream of released batches, each with its own Adam optimiser and its own
learning-rate schedule and stopping rule:

- warm-up: the learning rate rises linearly from 0 to the attacker's peak over the first
  epoch's steps (Adam at a high peak rate without warm-up diverged for the mirror decoder);
- plateau decay: after the warm-up the rate stays at its peak; an epoch is stale when its
  validation score does not beat the score of the last significant improvement by
  `attacks.min_improvement` (relative, classifiers) or `attacks.decoder_min_improvement`
  (decoders), and every `attacks.decay_patience`-th stale epoch in a row halves the rate
  (torch's ReduceLROnPlateau, factor 0.5, which also compares against the last significant
  best, so slow steady gains add up and count);
- early stopping: an attacker stops after `attacks.patience` such epochs in a row
  (`attack/converged/<attacker>` = 1) or at the cap `attacks.epochs` (= 0: its numbers are a
  lower bound and analysis flags them); `attack/epochs_run/<attacker>` says how many epochs
  it trained. An attacker class's `stopping_scale` multiplies the patience, the decay
  patience and the cap for that attacker (the leakage classifiers: 2, below);
- restart: an attacker that reaches the stop without one significant gain over its first
  scored epoch never learned (stuck, not converged; unless that first score was perfect) and
  trains again from its initial weights at half the rate of its last start, with a fresh
  warm-up, `attacks.restarts` (1) times at most, within the same cap
  (`attack/restarts/<attacker>`; one that reaches the cap restarted is reported not converged:
  its number is a lower bound). Measured: on `dp_pixelation` epsilon .5 (demo slice,
  seed 2) server_arch kept its warm-up epoch (validation best at epoch 1), stopped at epoch 11
  and scored test leakage .175 where seeds 0 and 1 reached .683 and .657 (the method's own
  proxy: .655), so the trial's leakage fell to mlp's .394 and the method's verdict to "tied";
  the same trial with one restart: .651 [.621, .680] (run again from its initial weights at
  half the rate, it converged at epoch 47), while the other setting's trial (epsilon 5, no
  attacker stuck) gave the same numbers as without the rule;
- model selection (`attacks.selection: val_best`): the weights evaluated on test are those
  of the attacker's best validation epoch (`attack/kept_epoch/<attacker>`): for a leakage
  classifier, the moving average of its weights at that epoch (below).

Thresholds, measured (quickstart `noisy_arl` sigma 1, split 2, per-epoch validation and test
scores over 20 epochs): classifiers need the 1e-3 (one validation example in 1,000); the
mirror decoder's test SSIM went .791 / .798 / .800 / .801 at epochs 10 / 13 / 15 / 20 while its
validation MSE still fell 0.1-0.7 % an epoch, so a 1e-3 decoder threshold ran it 25 epochs
(338 s for the whole attack phase) for under 0.005 SSIM; 5e-3 stops it near epoch 13-16.
Patience 5, measured against a 40-epoch constant-rate reference on the same frozen release
(`benchmarks/attack_convergence.py`): at patience 3 `noisy_arl` sigma 1 (split 2) stopped its
server_arch attacker after 11 epochs at leakage .8445 against the reference's .864; at
patience 5 it ran 19 epochs to .856. Noisy releases make the validation score noisy, so
three stale epochs in a row come too early. (`none` at splits 1 and 2 was within .008 of
the reference at patience 3 already.) Even so, the mirror decoder stopped at SSIM .801
against the reference's .826 on that release, with two faults of the stale rule: (1) each
small gain became the new best, so 0.3 % gains an epoch never added up to the 0.5 %
threshold (the same .801 after 27 epochs once fixed alone), and (2) halving on every stale
epoch annealed the rate to 1/32 within about ten epochs of slow progress. With both fixed
(gains against the last significant best; `decay_patience` 2) the default suite reached
leakage .8635 and SSIM .818 against .864 and .826, 630 s of attack phase (under CPU
contention), but the mirror and fc decoders ran to the 30-epoch cap there: on noisy releases
the SSIM is within the benchmark's tolerance and still flagged a lower bound. With a cap of
40 the mirror decoder converged there at epoch 33 (.818 at batch 256); at its own batch of
64 also at epoch 33, at .833, above the reference (`trainables.attacks.attackers.decoders`). So the cap
is 40 (`attacks.epochs`).
Why this and not cosine over a fixed budget: the number of epochs an attacker needs differs
by an order of magnitude between attackers and defenses, so a schedule tied to the cap either
anneals too early (cap small) or wastes most of the budget (cap large); decaying on plateau
anneals when an attacker stops improving, and the stop follows two halvings.
Peak rates (and the mirror decoder's own batch of 64) are per attacker, measured on the
quickstart's released features (the attackers of `trainables.attacks.attackers.leakage` and
`trainables.attacks.attackers.decoders` give the numbers);
`attacks.lr` sets one rate for all, `attacks.schedule: constant` turns the decay off.
Scores are accuracy for classifiers and minus the per-pixel MSE for decoders, on releases
of the validation split (held out of the train split, never trained on). Without a
validation split, or with `selection: last`, every attacker runs to the cap at its peak rate
and is reported as not converged.

Weight averaging (`ema` of the attacker's class; `attacks.ema` sets one decay for all): a
leakage classifier is scored and evaluated as the exponential moving average of its weights
and batch-norm buffers (torch's `AveragedModel`, decay 0.97 per step, made at its first
step), not as its current weights. Its raw test accuracy swings by points from epoch to
epoch, and at the demo slice (250 validation images) the best validation epoch was a
lottery over attacker seeds. Measured on frozen releases at the demo slice, server_arch over
attacker seeds 1-5, raw -> averaged: DISCO at rho 1000 (its own proxy classifier .865)
.816 / .840 / .853 / .847 / .855 -> .847 / .853 / .846 / .860 / .857 (seed 1's best epoch
picked on test instead of validation: .852, so the .816 was the pick, not the training);
`none` (split 2, seeds 1-3) .836 / .858 / .853 -> .862 / .863 / .868 and mlp .753 / .771 /
.735 -> .776 / .764 / .803; a noisy release (`activation_noise` sigma .5, split 2, seeds 1-3)
.853 / .841 / .833 -> .864 / .845 / .859, mlp .747 / .737 / .742 -> .788 / .730 / .760.
On the noisiest release measured it does not end the lottery: `noisy_arl` sigma 1 (lambda 0)
.821 / .842 / .817 -> .844 / .816 / .846, the averaged seed 2 stopping after 19 epochs where
the others ran 30: there the validation score itself is noisy and early stopping draws.
The decoders and the retrained utility model keep their own weights (0): averaged on `none`,
the mirror decoder's SSIM rose only .904 / .903 / .908 -> .910 / .909 / .912 and it ran to
its cap in 2 of 3 seeds (a flagged lower bound, at more cost), fc was unchanged (.749 /
.748 / .748 -> .749 / .747 / .746), and the retrained utility model fell .993 / .992 / .995
-> .993 / .985 / .984.

Stopping scale 2 for the leakage classifiers (patience 10, decay patience 4, cap 80): on a
noisy release their validation accuracy (250 images at the demo slice, standard error about
.023) jitters by more than the 1e-3 threshold, so stale epochs come from noise and two of them
halve the rate early. Measured on frozen releases at the demo slice, server_arch over attacker
seeds 1-3, suite rule -> scaled: `noisy_arl` sigma 1 (lambda 0, its proxy .842-.865 on test)
.838 / .818 / .846 -> .843 / .852 / .835 (19-34 epochs -> 32-44), mlp .756 / .766 / .749 ->
.781 / .761 / .785; DISCO at rho 1000 .847 / .853 / .846 -> .844 / .862 / .846, mlp .757 /
.767 / .759 -> .770 / .794 / .784; `activation_noise` sigma .5 .864 / .845 / .859 -> .864 /
.857 / .853, mlp .788 / .730 / .760 -> .789 / .809 / .790. The mlp ran up to 56 epochs, so the
cap scales too. Alternatives that did not help there: patience 10 alone (.832 / .833 / .834),
Adam at 1e-3 (.822 / .814 / .829), scoring every epoch on one fixed noise draw of the
validation split (.828 / .835 / .817); the best epoch picked on test (an oracle) gave .839 /
.845 / .838, so little is left to selection. Leakage classifiers are a small share of the
attack phase (server_arch 11 s of a median 137 s), so they get the slower rule and the
decoders keep the suite's.

Where the time goes: each attacker's training steps, the releases of the batches and the
validation passes are timed apart (`Stopwatch`) and logged as `time/attack/<part>`. On CUDA
each part is bracketed by CUDA events, read once at the end, so the timing itself adds no
wait for the device (a synchronise per attacker per batch would stall the pipeline it measures).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from trainables.attacks.releases import ReleasedSplit
from trainables.config import AttackConfig

PLATEAU_FACTOR = 0.5


class Stopwatch:
    """Seconds per named part of the attack phase: wall-clock on CPU; on CUDA the device time
    between two events recorded on the stream around the part, so queued kernels are charged
    to the part that queued them without synchronising until `seconds` is read."""

    def __init__(self, device: torch.device):
        self.device, self.cuda = device, device.type == "cuda"
        self._seconds: dict[str, float] = {}
        self._events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {}

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            stream = torch.cuda.current_stream(self.device)
            start.record(stream)
            try:
                yield
            finally:
                end.record(stream)
                self._events.setdefault(part, []).append((start, end))
            return
        began = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[part] = self._seconds.get(part, 0.0) + time.perf_counter() - began

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds per part so far (on CUDA: waits for the device once, then reads the events)."""
        if self._events:
            torch.cuda.synchronize(self.device)
            for part, pairs in self._events.items():
                self._seconds[part] = self._seconds.get(part, 0.0) + sum(s.elapsed_time(e) for s, e in pairs) / 1000
            self._events.clear()
        return dict(self._seconds)

    def timed_batches(self, part: str, batches: Iterator) -> Iterator:
        """`batches`, with the time spent producing each one charged to `part`."""
        iterator = iter(batches)
        while True:
            with self.timed(part):
                batch = next(iterator, None)
            if batch is None:
                return
            yield batch


def chunk_slices(n: int, size: int | None) -> list[slice]:
    """[0, n) cut in chunks of `size` (None: one chunk); a tail under a quarter of a chunk
    joins the chunk before it, so no step's gradient comes from a handful of examples (a
    last released batch of 196 would otherwise end in a step on 4)."""
    if size is None or size >= n:
        return [slice(0, n)]
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < size / 4:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], n], strict=True)]


@dataclass
class Attacker:
    net: nn.Module
    target: str  # "private", "task" or "image"
    lr: float = 1e-3
    batch_size: int | None = None  # steps on chunks of this size of each released batch; None: one step per batch
    ema: float = 0.0  # decay of the moving average of the weights that is scored and evaluated; 0: the weights
    stopping_scale: int = 1  # multiplies attacks.patience, attacks.decay_patience and the cap attacks.epochs
    optimizer: torch.optim.Optimizer = field(init=False)
    # the moving average of `net`'s weights and buffers, made at the first step (on `net`'s device)
    averaged: AveragedModel | None = field(default=None, init=False, repr=False)
    epochs_run: int = field(default=0, init=False)
    kept_epoch: int = field(default=0, init=False)
    converged: bool = field(default=False, init=False)  # stopped on patience: it trains no more
    scale: float = field(default=1.0, init=False)  # plateau decay applied to the peak rate
    best_score: float = field(default=float("-inf"), init=False)
    # the score of the last significant improvement: small gains add up against it
    reference_score: float = field(default=float("-inf"), init=False)
    best_state: dict | None = field(default=None, init=False, repr=False)
    stale_epochs: int = field(default=0, init=False)
    val_scores: list[float] = field(default_factory=list, init=False)  # one per scored epoch
    improvements: int = field(default=0, init=False)  # significant gains since the (re)start's first scored epoch
    restarts: int = field(default=0, init=False)
    batches_seen: int = field(default=0, init=False)  # since the (re)start: its warm-up counts these
    initial_state: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.initial_state = {key: value.detach().clone() for key, value in self.net.state_dict().items()}

    def restart(self) -> None:
        """Train again from the initial weights at half the rate, with a fresh warm-up,
        schedule and stopping rule; the best validation epoch so far stays the one kept
        unless the new run beats it."""
        self.restarts += 1
        self.lr *= PLATEAU_FACTOR
        self.net.load_state_dict(self.initial_state)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.averaged, self.scale, self.batches_seen = None, 1.0, 0
        self.reference_score, self.stale_epochs, self.improvements = float("-inf"), 0, 0

    @property
    def model(self) -> nn.Module:
        """What is scored on validation and evaluated on test: the moving average of the
        weights when `ema` > 0 (once a step has been taken), else the weights themselves."""
        return self.averaged.module if self.averaged is not None else self.net

    def loss(self, z: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.net(z)
        if self.target == "image":
            return F.mse_loss(out, targets["image"])
        return F.cross_entropy(out, targets[self.target])

    def step(self, z: torch.Tensor, targets: dict[str, torch.Tensor], warmup: float, bf16: bool = False) -> None:
        """One optimiser step on the released batch, or one per chunk of `batch_size`."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * self.scale * warmup
        for part in chunk_slices(len(z), self.batch_size):
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = self.loss(z[part], {key: value[part] for key, value in targets.items()})
            loss.float().backward()
            self.optimizer.step()
            self._average()

    def _average(self) -> None:
        if not self.ema:
            return
        if self.averaged is None:
            self.averaged = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(self.ema), use_buffers=True)
        self.averaged.update_parameters(self.net)

    def end_epoch(self, epoch: int, score: float | None, cfg: AttackConfig) -> None:
        """Record epoch `epoch` (1-based) with its validation score (None: not scored)."""
        self.epochs_run = epoch
        if score is None:
            self.kept_epoch = epoch
            return
        self.val_scores.append(score)
        if score > self.best_score:
            self.best_score, self.kept_epoch = score, epoch
            self.best_state = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
        threshold = cfg.decoder_min_improvement if self.target == "image" else cfg.min_improvement
        first = self.reference_score == float("-inf")
        if first or score > self.reference_score + threshold * abs(self.reference_score):
            self.improvements += not first
            self.reference_score, self.stale_epochs = score, 0
            return
        self.stale_epochs += 1
        if cfg.schedule == "plateau" and self.stale_epochs % (cfg.decay_patience * self.stopping_scale) == 0:
            self.scale *= PLATEAU_FACTOR
        if self.stale_epochs < cfg.patience * self.stopping_scale:
            return
        perfect = self.best_score >= (0.0 if self.target == "image" else 1.0)  # accuracy 1, or no pixel error
        if self.improvements == 0 and self.restarts < cfg.restarts and not perfect:
            self.restart()  # it never learned past its first epoch: stuck, not converged
        else:
            self.converged = True

    def cap(self, cfg: AttackConfig) -> int:
        """The most epochs this attacker trains."""
        return cfg.epochs * self.stopping_scale

    def keep_best(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.best_state = None


@torch.no_grad()
def selection_scores(attackers: dict[str, Attacker], selection: ReleasedSplit) -> dict[str, float]:
    """Each attacker's score on releases of the selection split (higher is better):
    accuracy for classifiers, minus the mean squared error for decoders."""
    for attacker in attackers.values():
        attacker.model.eval()
    totals = dict.fromkeys(attackers, 0.0)
    for z, targets in selection.batches():
        for name, attacker in attackers.items():
            out = attacker.model(z)
            if attacker.target == "image":
                totals[name] -= F.mse_loss(out, targets["image"], reduction="sum").item() / targets["image"][0].numel()
            else:
                totals[name] += (out.argmax(1) == targets[attacker.target]).sum().item()
    return {name: total / len(selection) for name, total in totals.items()}


def train_attackers(
    attackers: dict[str, Attacker],
    data: ReleasedSplit,
    cfg: AttackConfig,
    generator: torch.Generator,
    selection: ReleasedSplit | None = None,
    watch: Stopwatch | None = None,
) -> None:
    """Train every attacker until it converges on `selection` or reaches `cfg.epochs`, then
    leave it at its best-scoring epoch's weights (see the module docstring). `watch` gets
    the seconds of each attacker's steps (by its name), of `release` and of `validation`."""
    watch = watch or Stopwatch(torch.device("cpu"))
    scoring = selection is not None and len(selection) > 0
    steps_per_epoch = data.num_batches()
    bf16 = cfg.precision == "bf16"
    epochs = max((attacker.cap(cfg) for attacker in attackers.values()), default=0)
    with tqdm(total=epochs * steps_per_epoch, desc="attack: train", leave=False, disable=None) as bar:
        for epoch in range(1, epochs + 1):
            active = {name: a for name, a in attackers.items() if not a.converged and epoch <= a.cap(cfg)}
            if not active:
                break
            for attacker in active.values():
                attacker.net.train()
            for z, targets in watch.timed_batches("release", data.batches(generator)):
                for name, attacker in active.items():
                    attacker.batches_seen += 1
                    with watch.timed(name):
                        attacker.step(z, targets, min(1.0, attacker.batches_seen / steps_per_epoch), bf16)
                bar.update()
            with watch.timed("validation"):
                scores = selection_scores(active, selection) if scoring else {}
            for name, attacker in active.items():
                attacker.end_epoch(epoch, scores.get(name), cfg)
    for attacker in attackers.values():
        attacker.keep_best()
