"""How far to trust a trial's privacy number: did its strongest attacker converge, what did
the method's own adversary report (proxy) against the fresh attackers, and how far is its
leakage above the floor that perfect utility forces.

- `unconverged(table, metric)`: True where the attacker that sets `metric` (the one whose
  per-attacker value equals the aggregate) stopped at the epoch cap
  (`attack/converged/<attacker>` = 0; in a table of seed means, below 1: some seed hit
  it): that privacy number is a lower bound on the
  leakage. The white-box attacker trains nothing and never counts as unconverged; a table
  without convergence columns (runs from before the metric existed) is all False.
- `defense_unconverged(table)`: True where the defense's training stopped at its epoch cap
  (`train/converged` = 0; in a table of seed means, below 1) instead of by the convergence
  rule (`trainables/convergence.py`): its privacy and utility are those of an undertrained
  defense, neither a bound nor a verdict. Runs without the metric are all False.
- `PROXY_OF`: the proxy key that sits beside each fresh privacy metric.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

LEAK, SSIM, FLOOR = "privacy/leak_acc", "recon/ssim", "privacy/leak_floor"
DEFENSE_CONVERGED = "train/converged"
PROXY_OF = {LEAK: "privacy/proxy_leak_acc", SSIM: "recon/proxy_ssim"}
ATTACKER_FAMILY = {LEAK: "leak", SSIM: "recon"}


def column(table: pa.Table, name: str) -> np.ndarray:
    """A float column, NaN where it is missing (or the whole column when it is absent)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray([np.nan if v is None else float(v) for v in table.column(name).to_pylist()], dtype=float)


def unconverged(table: pa.Table, metric: str) -> np.ndarray:
    base = metric.split(":")[0]
    family = ATTACKER_FAMILY.get(base)
    flags = np.zeros(table.num_rows, dtype=bool)
    if family is None:
        return flags
    aggregate = column(table, metric)
    prefix = base + "/"
    for name in table.column_names:
        if not name.startswith(prefix) or ":" in name.removeprefix(prefix):
            continue
        attacker = name.removeprefix(prefix)
        converged = column(table, f"attack/converged/{family}/{attacker}")
        sets_it = column(table, name) == aggregate
        flags |= sets_it & (converged < 1)  # a seed mean below 1: some seed hit the cap
    return flags


def defense_unconverged(table: pa.Table) -> np.ndarray:
    return column(table, DEFENSE_CONVERGED) < 1


def above_floor(table: pa.Table) -> np.ndarray:
    """privacy/leak_acc minus privacy/leak_floor (NaN where either is missing)."""
    return column(table, LEAK) - column(table, FLOOR)
