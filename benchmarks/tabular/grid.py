"""The tabular benchmark's table: every configuration of a quickstart grid, run once and stored.

    python benchmarks/tabular/grid.py [--workers 2] [--size demo|full] [--stored-only]

The grid is sweeps/quickstart.yaml's own search space at GRID's points: sigma at 6
log-spaced values over its [0.05, 8], lambda at 4 over [0.001, 1], split 1, 2 and 3 (72
configurations), each a real trial (Noisy ARL trained, then the whole default attack suite,
converged, with its 95 % test-set bootstrap intervals), seed 0. `--size demo` (the default) is
`make demo`'s slice, 2,500 train / 1,000 test images: a trial there, training and the
converged suite, takes about 160 s of one core (`make demo`: 4 trials, 2 at a time, 322 s),
so the grid is about 100 minutes on 2 cores; `--size full` is the spec's 10k/2k slice
(a quickstart trial's attack alone took 527 s of one core: about 5 h on 2 cores). Every finished trial is appended to
`benchmarks/results/tabular_<size>.jsonl` at once (`stored_trials`: reused only by the same
code), so a stopped run resumes where it stopped. Once all 72 are stored it writes the table,
`benchmarks/tabular/quickstart_<size>.parquet`: one row per configuration with sigma,
lambda, split, every final metric and its interval ends, each learned attacker's converged
flag and the attack seconds, with the spec, the slice and the code fingerprint in the
Parquet metadata. `replay.py` drives the samplers against it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import stored_trials  # noqa: E402

SPEC = HERE.parent.parent / "sweeps" / "quickstart.yaml"
GRID: dict[str, list] = {
    "sigma": [round(float(v), 4) for v in np.geomspace(0.05, 8.0, 6)],
    "lambda": [round(float(v), 4) for v in np.geomspace(0.001, 1.0, 4)],
    "split": [1, 2, 3],
}
SIZES = {"demo": (2500, 1000), "full": (10000, 2000)}
SEED = 0
KEPT_PREFIXES = ("utility/", "privacy/", "recon/", "attack/converged/", "time/", "client/")


def configurations() -> list[dict]:
    return [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]


def overrides_of(config: dict, size: str) -> list[str]:
    train_size, test_size = SIZES[size]
    return [
        "search_space=null",
        f"params={json.dumps({'sigma': config['sigma'], 'lambda': config['lambda']})}",
        f"model.split={config['split']}",
        f"train.seed={SEED}",
        f"dataset.train_size={train_size}",
        f"dataset.test_size={test_size}",
    ]


def kept_metrics(spec: Path, overrides: list[str]) -> dict[str, float]:
    """A trial's metrics that the table keeps (run in a worker process)."""
    return {k: v for k, v in stored_trials.run_trial(spec, overrides).items() if k.startswith(KEPT_PREFIXES)}


def table_of(rows: list[tuple[dict, dict[str, float]]], metadata: dict[str, str]) -> pa.Table:
    keys = sorted({key for _, metrics in rows for key in metrics})
    columns = {name: [config[name] for config, _ in rows] for name in GRID}
    columns.update({key: [float(metrics.get(key, np.nan)) for _, metrics in rows] for key in keys})
    table = pa.table(columns)
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="trials at once, one core each")
    parser.add_argument("--stored-only", action="store_true", help="run nothing: report what is stored, write the table if complete")
    parser.add_argument("--out", type=Path, default=None, help="the Parquet table (default benchmarks/tabular/quickstart_<size>.parquet)")
    args = parser.parse_args(argv)
    store = stored_trials.StoredTrials(stored_trials.RESULTS / f"tabular_{args.size}.jsonl", SPEC, stored_trials.code_fingerprint())
    print(store.describe(), file=sys.stderr, flush=True)
    configs = configurations()
    if not args.stored_only:
        stored_trials.run_missing(store, SPEC, [overrides_of(c, args.size) for c in configs], args.workers, kept_metrics)
    missing = [c for c in configs if store.get(overrides_of(c, args.size)) is None]
    if missing:
        print(f"{len(configs) - len(missing)} of {len(configs)} configurations stored; the table needs all of them", file=sys.stderr)
        return 1
    train_size, test_size = SIZES[args.size]
    metadata = {
        "spec": str(SPEC.relative_to(HERE.parent.parent)), "grid": json.dumps(GRID), "seed": str(SEED),
        "train_size": str(train_size), "test_size": str(test_size), "code": store.fingerprint,
    }
    out = args.out or HERE / f"quickstart_{args.size}.parquet"
    pq.write_table(table_of([(c, store.get(overrides_of(c, args.size))) for c in configs], metadata), out)
    print(f"wrote {out}: {len(configs)} configurations", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
