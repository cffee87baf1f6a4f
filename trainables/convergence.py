"""When a defense has converged: the trainer's stopping rule for a min-max game.

A defense trains in its method's phases (`Method.phases`: most have one; DISCO trains the
client first and the filter after, DeepObfuscator pre-trains before its game). Each phase
runs until its validation signals stop moving, or to the cap `train.epochs`:

- signals: the deployed utility on the validation split (`val/utility_acc`), every proxy
  adversary's validation score (`val/proxy_leak_acc`, `val/proxy_ssim`) and, for a method
  with a game, the shadow attacker's (`val/shadow_leak_acc`, `trainables/shadow.py`), once
  per epoch;
- a signal still moves while the least-squares trend of its last 2 W epochs (W =
  `train.patience`) would carry it further than `max(train.tolerance, NOISE_Z * its standard
  error)` over one window (W epochs), the standard error from the scatter of the 2 W values
  around that trend;
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

Where the rule falls short (measured, `benchmarks/defense_convergence.py` on 10,000 test
images, demo slice, 250 validation images): adv_recon lambda1 10 sits on a plateau from
epoch 10 to about 30 (the rule stops it, converged, at 64: leakage .819, SSIM .834), then
leaves it slowly: its proxy's validation SSIM falls about .0025 an epoch, under the trend
test's noise over 2 x 10 epochs, and at 128 epochs the fresh leakage is .740 and .754 (two
seeds), SSIM .607 and .697. With `train.patience` 20 the same drift is seen: both seeds run
to the cap at the halved rate (100-101 epochs, `train/converged` 0, leakage .791, .793). MaxEnt alpha
0.9, Privacy Partitioning lambda 10 and DeepObfuscator lambda1 10 are within .02 leakage of
twice their training (MaxEnt's white-box SSIM .031 above, beyond its noise). On the
quickstart's own slice (4x the steps an epoch, 1,000 validation images) the same game leaves
its plateau by epoch 12 and the rule, at W = 10, was still training at full rate at epochs 31
and 34 (two seeds): the slice decides whether the drift is visible.

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
