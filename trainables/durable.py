"""Files the platform writes and reads back, safe to lose power over.

- `write_atomically(path, data)`: the bytes go to a temporary file in the same folder (created
  0600), which is flushed and fsynced, renamed over `path`, and the folder fsynced: after a
  crash `path` holds the old bytes or the new ones, never a prefix of either, and the rename
  itself survives a power loss. A plain `os.replace` without the fsyncs can leave an empty
  file after one (the data blocks were never written, the rename was).
- `append_durably(path, line)`: one line appended and fsynced (the stored benchmark records:
  a reader skips a line a kill cut short).
- `save_state` / `load_state`: a trial state (`torch.save` of tensors and plain containers)
  behind a header line that holds the SHA-256 of what follows. `load_state` raises
  `UnreadableState`, naming the file, its size and why, for a file that is empty, cut short,
  altered (a bit flip that still unpickles fails the checksum), not a state at all, or that
  holds objects other than tensors and plain containers (loaded as data only, with
  `weights_only`: unpickling anything else could run code of whoever wrote the file). A
  state saved before the header existed is loaded without a checksum.
- `set_aside(path)`: renames an unreadable file to `<name>.corrupt-<UTC time>`, so the next
  attempt does not fail on it again and nothing is deleted.
- `make_files_private()`: the command-line entry points call it first
  (`program.run_as_program`), so every file and folder they create (MLflow stores, artifacts
  with reconstructions of possibly private images, client weights, trial states, launch
  folders, the data cache) is 0600 / 0700, and so is what the local Ray workers they start
  create (a child inherits the umask).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

STATE_MAGIC = b"PRIVSWEEP-STATE 1 sha256="
PRIVATE_UMASK = 0o077
DIGEST_LENGTH = 64  # hex digits of a SHA-256


class UnreadableState(Exception):
    """A state file (a trial's, a cached task model) that cannot be trusted or loaded."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        size = path.stat().st_size if path.exists() else 0
        super().__init__(f"state file {path} ({size} bytes) cannot be used: {reason}")


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def append_durably(path: Path, line: str) -> None:
    """Append `line` (a newline added, and one before it if a cut-short line ends the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = line + "\n"
    with path.open("a+b") as file:
        if file.tell() > 0:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                record = "\n" + record
        file.write(record.encode())
        file.flush()
        os.fsync(file.fileno())


def save_state(state: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    write_atomically(path, STATE_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def load_state(path: Path, device: torch.device) -> dict[str, Any]:
    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise UnreadableState(path, "the file is empty")
    payload = data
    if data.startswith(STATE_MAGIC):
        digest, newline, payload = data[len(STATE_MAGIC) :].partition(b"\n")
        if not newline or len(digest) != DIGEST_LENGTH:
            raise UnreadableState(path, "its header is cut short")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise UnreadableState(path, "its checksum does not match its contents (cut short or altered since it was written)")
    try:
        state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
    except Exception as error:  # any failure to parse untrusted bytes is the file's fault, whatever torch raises
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnreadableState(path, f"it is not a state of tensors and plain containers ({first_line})") from None
    if not isinstance(state, dict):
        raise UnreadableState(path, f"it holds a {type(state).__name__}, not a state")
    return state


def aside_name(name: str) -> str:
    """`<name>.corrupt-<UTC time>`: where an unusable file goes, beside where it was."""
    return f"{name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def set_aside(path: Path) -> Path:
    """Rename `path` to `aside_name(path.name)` beside it; returns the new path."""
    aside = path.with_name(aside_name(path.name))
    os.replace(path, aside)
    fsync_folder(path.parent)
    return aside


def make_files_private() -> None:
    os.umask(PRIVATE_UMASK)
