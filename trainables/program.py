"""How a privsweep command runs as a program (`python -m sweeps`, `python -m analysis`).

`run_as_program(main)`:
- makes every file the command and the local Ray workers it starts create private
  (`durable.make_files_private`), as a program only: tests that call `main()` keep their umask;
- freezes the garbage collector's view of every object alive once `main()` returned. The
  interpreter's last collections would traverse the torch, mlflow and Ray object graphs only for
  the OS to free them anyway: 4.7 s of a launch's exit against 2.2 s frozen (three launches of
  the tiny test spec each, here). atexit hooks (Ray's shutdown, MLflow's flush) and thread joins
  still run; only the collection of what is left is skipped.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import NoReturn

from trainables.durable import make_files_private


def run_as_program(main: Callable[[], int]) -> NoReturn:
    make_files_private()
    code = main()
    gc.freeze()
    raise SystemExit(code)
