"""What a launch costs beyond its trials: `python -m sweeps run sweeps/quickstart.yaml --smoke` (a
new user's first launch: 2 trials of small_cnn on 256 Fashion-MNIST images, a few seconds of
compute each), timed by the lines it prints.

Phases, each the median over `--repeats` launches into a fresh home (a fresh MLflow store and
study, as a first launch and every test launch has):
- start: process start to the "launch ..." line (imports, the store's tables, the study, Ray);
- trials: to the "planned trial(s) finished" line (actor start-up, the trials, their logging);
- report: to the last line (the front report and where to look);
- exit: the last line to the process's end (Ray's shutdown, the interpreter's own).

    python benchmarks/launch_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKERS = {"start": lambda line: line.startswith("launch "), "trials": lambda line: "planned trial(s) finished" in line}


def timed_launch(home: Path) -> dict[str, float]:
    env = {**os.environ, "PRIVSWEEP_HOME": str(home), "PYTHONPATH": str(REPO)}
    begin = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "sweeps", "run", "sweeps/quickstart.yaml", "--smoke"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, last = {}, begin
    for line in process.stderr:
        last = time.monotonic()
        for phase, marks in MARKERS.items():
            if phase not in seen and marks(line):
                seen[phase] = last
    end = time.monotonic()
    if process.wait() != 0 or len(seen) != len(MARKERS):
        raise SystemExit(f"the launch failed or printed no {sorted(set(MARKERS) - set(seen))} line")
    return {"start": seen["start"] - begin, "trials": seen["trials"] - seen["start"], "report": last - seen["trials"],
            "exit": end - last, "wall": end - begin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [timed_launch(Path(scratch) / f"home{i}") for i in range(args.repeats)]
    medians = {phase: statistics.median(row[phase] for row in rows) for phase in rows[0]}
    for phase, seconds in medians.items():
        print(f"{phase:>7}: {seconds:6.2f} s  (each: {', '.join(f'{row[phase]:.2f}' for row in rows)})")
    print(json.dumps({"launch_overhead_s": medians}))


if __name__ == "__main__":
    main()
