"""When a defense has converged: the trainer's stopping rule for a min-max game.

A defense trains in its method's phases (`Method.phases`: most have one; DISCO trains the
client first and the filter after, DeepObfuscator pre-trains before its game). Each phase
runs until its validation signals stop moving, or to the cap `train.epochs`:

- signals: the deployed utility on the validation split (`val/utility_acc`), every proxy
  adversary's validation score (`val/proxy_leak_acc`, `val/proxy_ssim`) and, for a method
  with a game, the shadow attacker's (`val/shadow_leak_acc`, `trainables/shadow.py`), once
  per epoch;
- a signal still moves while the least-squares trend of its last 2 W epochs would carry it
  further than `max(train.tolerance, NOISE_Z * its standard error)` over one window (W
  epochs), the standard error from the scatter of the 2 W values around that trend;
- W = max(`train.patience`, ceil(`train.window_steps` / batches an epoch)) epochs
  (`window_epochs`): a window holds at least `train.window_steps` optimiser steps;
- a phase has converged at the first epoch (at least 2 W into it) at which no signal moves.
  The last phase's convergence ends training with `train/converged` = 1; a phase that hits
  the cap moves on (or ends training) with `train/converged` = 0, and the analysis flags the
  defense as it flags an attacker at its cap;
- a game phase (`Method.game_phases`: the client trains against the method's own
  adversaries) that has converged halves every learning rate of the method and runs on,
  with a fresh window, until it converges again, `train.anneal` times (default 2); the cap
  `train.epochs` holds at each rate (`train/lr_halvings/<phase>`, per epoch
  `defense/lr_scale`).

Why a game anneals: at a constant rate a game settles into a cycle, not a point, and where
the cycle is when training stops decides the verdict. Measured (DeepObfuscator lambda1 10,
quickstart at the demo slice, seed 0, a fresh `server_arch` attacker's test leakage every
10 or 20 game epochs): at the constant 1e-3, .877 / .784 / .791 / .797 / .853 / .808 at
game epochs 0 / 19 / 39 / 59 / 79 / 99 (the rule stopped at 33 once, .820, and a reference
at 110 read .731); with the rate halved every 20 epochs, .848 / .758 / .832 / .814 at 1e-3
and 5e-4, then .834 / .836 / .826 / .835 at 2.5e-4 and 1.25e-4: the cycle shrinks to
the test set's noise.

Why a trend test and not "no new best for `patience` epochs", as the attackers stop: an
attacker climbs to a plateau, while a game can settle into an oscillation. Measured (MaxEnt
alpha 0.9, quickstart at the demo slice, 250 validation images): from epoch 20 to 60 the
proxy's validation leakage swung between 0.24 and 0.67 from one epoch to the next, so a rule
that waits for every epoch to stay within a tolerance of a reference ran to any cap of 60.
Its trend, measured against that scatter, flattens. A rising signal is a trend however noisy
(comparing the means of two windows instead takes the steep first epochs' spread for noise:
that rule stopped the same run's utility at epoch 12, mid-rise). A slow drift still counts
once it adds up beyond its scatter, and a steady signal has none: the tolerance decides.

Why the window has a floor in optimiser steps: a game can sit on a plateau for hundreds of
steps and then leave it, and how long it sits is counted in steps, not epochs. Measured
(adv_recon lambda1 10, split 2, seeds 0 and 1): on the quickstart's slice (71 batches an
epoch, 1,000 validation images) its proxy's validation SSIM left its plateau around epochs
9-16 (640-1,140 steps) and a 10-epoch window (710 steps) saw the drift and kept training;
on the demo's 2,500 images (18 batches) it left after about epoch 30 (540 steps), and a
10-epoch window (180 steps) stopped it on the plateau, converged, at 64 epochs: leakage .819,
SSIM .834 on 10,000 test images, where 128 epochs gave .740 and .754 (two seeds), SSIM .607
and .697 (`benchmarks/defense_convergence.py`). A 20-epoch window (360 steps) saw the drift
on both seeds and ran them to the cap, flagged unconverged (`train/converged` 0; leakage .791,
.793 at 100-101 epochs). So `train.window_steps` is 360, the smallest window measured to see
it: the quickstart's window stays 10 epochs, the demo slice's becomes 20, and a slice of 8
batches an epoch needs 45 (90 epochs a phase, over a cap of 60: every phase ends at the cap
and is flagged, which the trial and the launcher say before training).

What the floor does not fix (measured there, W = 20, `benchmarks/defense_convergence.py`
against twice each default's schedule, 10,000 test images): adv_recon is flagged at its cap
and still moves (leakage .791 -> .690 at 202 epochs); DeepObfuscator and Privacy
Partitioning are flagged at their caps (60 epochs a stage) though twice their training moves
neither number beyond .02 / .03; MaxEnt alpha 0.9 converges at 136 epochs and still drifts
(leakage .832 -> .807, white-box SSIM .915 -> .882 at 272): about .0002 an epoch, under what
250 validation images resolve over 40 epochs (its signals' slope standard errors: .0002-.0005), so
its stop is limited by the validation split's noise, not by the window.

What a plateau test cannot see: a game with a second regime. Measured on the quickstart's own
slice (W = 10, 71 batches an epoch, 1,000 validation images; the same benchmark, seed 0):
Privacy Partitioning lambda 10 converged at 81 epochs and twice its schedule moved leakage
.863 -> .857 and SSIM .863 -> .828 (mirror; the default's mirror at its cap). MaxEnt alpha 0.9
converged at 64 epochs (20 / 20 / 24 at its three rates, each stage the rule's minimum 2 W):
utility .985, leakage .881, SSIM .942. Its reference (40 / 40 / 48) left that state at half
rate: from about epoch 60 the proxy's training cross-entropy rose .7 -> 2.1 (chance: 2.30) and
the shadow's validation leakage fell .74 -> .21, and at 128 epochs utility was .650 (the
task's majority class: .6), leakage .357 (its attacker at the cap), SSIM .185. Every signal
was flat over the default's last windows; a plateau is not a fixed point of a game, and no
window over the past foresees the move to the other regime. So a defense stopped by this rule is the state its game settled in
for at least 2 W epochs, not the end of its game.

The deployed defense is the last epoch's. At convergence no signal trends beyond its scatter
over the last 2 W epochs, so no epoch there is better than another by more than that scatter,
and the last has had the proxies adapt longest: it is the state the game settled in. A best-by-utility choice would pick, in a game, the epoch where the client
had fought its adversary least.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

NOISE_Z = 2.0


def window_epochs(patience: int, window_steps: int, batches_per_epoch: int) -> int:
    """The rule's window W in epochs: `patience`, or more where an epoch has too few steps."""
    return max(patience, math.ceil(window_steps / max(batches_per_epoch, 1)))


@dataclass
class Plateau:
    """The validation signals of one phase, epoch by epoch (see the module docstring)."""

    window: int
    tolerance: float
    history: dict[str, list[float]] = field(default_factory=dict)

    def update(self, signals: dict[str, float]) -> bool:
        """Record one epoch's signals; True once the phase has converged."""
        for name, value in signals.items():
            self.history.setdefault(name, []).append(value)
        return self.converged

    @property
    def converged(self) -> bool:
        return bool(self.history) and not any(self.moving(values) for values in self.history.values())

    def moving(self, values: list[float]) -> bool:
        w = self.window
        recent = values[-2 * w :]
        if len(values) < 2 * w or not all(math.isfinite(v) for v in recent):
            return True
        times = range(len(recent))
        slope, intercept = statistics.linear_regression(times, recent)
        residuals = [v - (intercept + slope * t) for t, v in zip(times, recent, strict=True)]
        spread = sum((t - statistics.fmean(times)) ** 2 for t in times)
        standard_error = math.sqrt(sum(r * r for r in residuals) / max(len(recent) - 2, 1) / spread)
        return abs(slope) * w > max(self.tolerance, NOISE_Z * standard_error * w)

    def state_dict(self) -> dict:
        return {"history": {name: list(values) for name, values in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.history = {name: [float(v) for v in values] for name, values in state["history"].items()}
