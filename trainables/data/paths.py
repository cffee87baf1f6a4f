"""Where data and caches live."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """`$PRIVSWEEP_DATA`, default `~/.cache/privsweep/data`."""
    return Path(os.environ.get("PRIVSWEEP_DATA", Path.home() / ".cache" / "privsweep" / "data")).expanduser()


def cache_dir() -> Path:
    return data_root() / "arrow-cache"
