"""Spec and search-space files read as text: UTF-8, or an input error naming the file."""

from __future__ import annotations

from pathlib import Path

from trainables.errors import InputError


def read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8.") from None
