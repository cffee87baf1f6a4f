"""`python tests/smoke_launches.py PLAN RESULTS 2>LOG`: `python -m sweeps run SPEC --smoke ARGS...`
for each entry of the JSON list PLAN ({"spec", "args"}), one after another in this one process.
RESULTS (a JSON list, rewritten after every launch) holds each launch's exit code and where its
stderr lies in LOG, which must be a file: [start, end) byte offsets.

The shipped-spec smoke test runs its ten launches this way: one interpreter, one import of
torch and one local Ray for all of them (the first launch starts Ray, each later one finds it
running, as a second launch from a notebook does), where ten processes paid about 15 s each for
their own. Each launch still goes through the command line's `main`, as a program
(`run_as_program`: the umask, the frozen
collector at exit)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from sweeps.cli import main
from trainables.program import run_as_program


def stderr_offset() -> int:
    sys.stderr.flush()
    return os.lseek(sys.stderr.fileno(), 0, os.SEEK_CUR)


def smoke_launch(spec: str, args: list[str]) -> dict:
    start = stderr_offset()
    try:
        code = main(["run", spec, "--smoke", *args])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except Exception:
        traceback.print_exc()
        code = 1
    return {"spec": spec, "code": code, "stderr": [start, stderr_offset()]}


def launch_all(plan: Path, results: Path) -> int:
    outcomes = []
    for entry in json.loads(plan.read_text()):
        outcomes.append(smoke_launch(entry["spec"], entry["args"]))
        results.write_text(json.dumps(outcomes))
    return 0


if __name__ == "__main__":
    run_as_program(lambda: launch_all(Path(sys.argv[1]), Path(sys.argv[2])))
