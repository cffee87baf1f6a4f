"""Every node of the Ray cluster reaches the launch's storage: checked before any trial.

A trial that Tune restarts on another node (a lost node, `search.max_failures`) resumes from
its state file in the storage (`trainables/storage.py`). On a node that does not see the
storage it would find nothing there and silently start again from scratch. Tune checks this
the same way (a marker file the driver writes and each worker looks for:
`ray.train._internal.storage.StorageContext._check_validation_file`), but only when a trial
reports a checkpoint, which these trials never do (`trainables/tune_trainable.py` says why).

So the launcher writes a marker holding a fresh token under the experiment's folder, and a
zero-CPU Ray task pinned to each alive node reads it back. A node that cannot read it, or
reads something else (a disk of its own at the same path), stops the launch with exit 2
before any trial runs. With one node there is nothing to check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from trainables.errors import InputError
from trainables.storage import STORAGE_VARIABLE, Location

PROBE_TIMEOUT_S = 120  # a node's first task starts a worker process (seconds, more on a busy node)


def read_marker(marker: Location) -> bytes | None:
    """What a node reads at `marker` (run on that node), or None when it cannot."""
    try:
        return marker.read()
    except OSError:  # pyarrow's FileNotFoundError, PermissionError and store errors are all OSError
        return None


def node_names(nodes: list[dict]) -> list[str]:
    return [f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})" for node in nodes]


def unreachable_nodes(where: Location, read: Callable[[Location], bytes | None] = read_marker) -> list[str]:
    """The alive Ray nodes on which `read` (run there) does not find what this process wrote
    under `where`; none with a single node."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return []
    token = uuid.uuid4().hex.encode()
    marker = where / f".privsweep-storage-check-{token.decode()[:12]}"
    marker.write(token)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(read)
        pending = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(marker)
                   for node in nodes]
        unreachable = []
        for name, reply in zip(node_names(nodes), pending, strict=True):
            try:
                if ray.get(reply, timeout=PROBE_TIMEOUT_S) != token:
                    unreachable.append(name)
            except (GetTimeoutError, RayError):
                unreachable.append(name)
        return unreachable
    finally:
        marker.delete()


def check_storage_shared(where: Location, read: Callable[[Location], bytes | None] = read_marker) -> None:
    """InputError (exit 2) when a node of the cluster cannot reach `where` (the experiment's
    folder in the storage)."""
    unreachable = unreachable_nodes(where, read)
    if unreachable:
        raise InputError(
            f"the launch's storage {where.parent} is not shared by every Ray node: {', '.join(unreachable)} cannot read "
            "what this driver wrote there, so a trial restarted on such a node would start again from scratch. Set "
            f"{STORAGE_VARIABLE} (on the driver: the job's runtime env) to a folder every node mounts (NFS, EFS, a "
            "ReadWriteMany volume) or to s3://bucket/prefix or gs://bucket/prefix."
        )
