"""Where a launch keeps its own state: Tune's storage path, on this disk or behind a URI.

`PRIVSWEEP_STORAGE` names the storage root:
- a folder: `<home>/ray_results` when unset. On a multi-node cluster it must be one every node
  mounts (NFS, EFS, a ReadWriteMany volume): the launcher refuses one that a node cannot see
  (`sweeps.launcher.check_storage_shared`);
- or a URI that `pyarrow.fs` opens: `s3://bucket/prefix`, `gs://bucket/prefix`, with the
  query options pyarrow reads (`?endpoint_override=host:port&scheme=http` for an S3-compatible
  server). Credentials come from the usual places (the AWS / Google environment variables,
  instance roles), never from the URI that logs and messages show.

Under the root, as Tune lays out its experiments, `<experiment>/<launch>/` holds Tune's
experiment state, `launch.json` and `trial_state/` (each trial's epoch state,
`trainables.tune_trainable`). Every read and write goes through the filesystem the root
names, as Tune's own checkpoints do, so a trial restarted on any node finds its state. On a
local filesystem a write is atomic and fsynced (`trainables.durable`); on an object store an
object appears whole when its upload completes, or not at all.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs

from trainables.errors import InputError

STORAGE_VARIABLE = "PRIVSWEEP_STORAGE"


def storage_root() -> str:
    """`$PRIVSWEEP_STORAGE`, or `<home>/ray_results`; exit 2 (InputError) when pyarrow cannot
    open it."""
    # imported here: MLflow's import has no place in a Ray task that only reads a Location
    from trainables.tracking import home

    root = os.environ.get(STORAGE_VARIABLE) or str(home() / "ray_results")
    try:
        filesystem(root)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError, ValueError) as error:
        raise InputError(
            f"{STORAGE_VARIABLE}={shown(root)}: pyarrow cannot open it ({str(error).replace(root, shown(root))}); "
            "give a folder every node "
            "mounts, or a URI such as s3://bucket/prefix or gs://bucket/prefix, or unset it for <home>/ray_results."
        ) from None
    return root


@functools.lru_cache(maxsize=8)
def filesystem(root: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem and path in it that `root` names (a folder is made absolute)."""
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    fs, path = pyarrow.fs.FileSystem.from_uri(root)
    return fs, path.rstrip("/")


def shown(root: str) -> str:
    """`root` without its query options (an endpoint, a region: nothing a message needs)."""
    return root.partition("?")[0]


@dataclass(frozen=True)
class Location:
    """A file or folder under a storage root: plain data (sent to Ray workers as such), its
    filesystem opened in each process that uses it."""

    root: str
    parts: tuple[str, ...] = ()

    def __truediv__(self, name: str) -> Location:
        return Location(self.root, (*self.parts, name))

    @property
    def parent(self) -> Location:
        return Location(self.root, self.parts[:-1])

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def fs(self) -> pyarrow.fs.FileSystem:
        return filesystem(self.root)[0]

    @property
    def path(self) -> str:
        """The path within `fs` (what Tune's `storage_path` takes beside `storage_filesystem`)."""
        return "/".join((filesystem(self.root)[1], *self.parts))

    @property
    def local(self) -> Path | None:
        """The path on this machine's filesystem, or None behind a URI."""
        return Path(self.path) if isinstance(self.fs, pyarrow.fs.LocalFileSystem) else None

    def __str__(self) -> str:
        return "/".join((shown(self.root).rstrip("/"), *self.parts))

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pyarrow.fs.FileType.NotFound

    def modified(self) -> float:
        """Seconds since the epoch of the last write (0 when the store keeps no time)."""
        mtime = self.fs.get_file_info(self.path).mtime
        return mtime.timestamp() if mtime is not None else 0.0

    def read(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def write(self, data: bytes) -> None:
        """Atomically: a reader sees the old file or the new one, never part of it."""
        if self.local is not None:
            from trainables.durable import write_atomically

            write_atomically(self.local, data)
            return
        self.fs.create_dir(self.parent.path, recursive=True)
        with self.fs.open_output_stream(self.path) as stream:
            stream.write(data)

    def delete(self) -> None:
        """The file, if it is there (one request)."""
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass

    def set_aside(self) -> Location:
        """Renamed beside it to `durable.aside_name(name)` (by `durable.set_aside` on a local
        filesystem); returns where it went."""
        from trainables.durable import aside_name, set_aside

        if self.local is not None:
            return self.parent / set_aside(self.local).name
        aside = self.parent / aside_name(self.name)
        self.fs.move(self.path, aside.path)
        return aside

    def children(self, suffix: str = "", folders: bool = False) -> list[Location]:
        """The files (or folders) right under this folder whose names end with `suffix`; none when
        it does not exist."""
        wanted = pyarrow.fs.FileType.Directory if folders else pyarrow.fs.FileType.File
        infos = self.fs.get_file_info(pyarrow.fs.FileSelector(self.path, allow_not_found=True))
        return [self / info.base_name for info in infos if info.type == wanted and info.base_name.endswith(suffix)]


class LocalCopy:
    """A local file standing for `location` (a context manager): the file itself on a local
    filesystem; behind a URI, a private temporary file, filled from the location when it
    exists. `save()` writes the local file back (atomically)."""

    def __init__(self, location: Location):
        self.location = location
        self.folder: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> LocalCopy:
        if self.location.local is None:
            self.folder = tempfile.TemporaryDirectory(prefix="privsweep-state-")
        return self

    def __exit__(self, *exc) -> None:
        if self.folder is not None:
            self.folder.cleanup()

    @property
    def path(self) -> Path:
        local = self.location.local
        return local if local is not None else Path(self.folder.name) / self.location.name

    def fetch(self) -> bool:
        """Whether the location holds a file (now also at `path`)."""
        if not self.location.exists():
            return False
        if self.location.local is None:
            self.path.write_bytes(self.location.read())
        return True

    def save(self) -> None:
        if self.location.local is None:
            self.location.write(self.path.read_bytes())
