"""A launch's storage (`trainables/storage.py`) behaves the same on a local folder and behind an
S3 URI, a storage pyarrow cannot open exits 2, and a multi-node launch is refused when a node
cannot read the storage (`sweeps/shared_storage.py`)."""

from __future__ import annotations

import pytest

from sweeps.shared_storage import check_storage_shared
from trainables.errors import InputError
from trainables.storage import LocalCopy, Location, storage_root


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> str:
    return str(tmp_path / "runs") if request.param == "local" else request.getfixturevalue("s3_storage")


def test_a_location_writes_reads_lists_sets_aside_and_deletes(root):
    launch = Location(root, ("experiment", "L1"))
    assert launch.children(".pt") == [] and not (launch / "launch.json").exists()  # nothing there yet
    (launch / "launch.json").write(b'{"status": "running"}')
    (launch / "trial_state" / "t1.pt").write(b"one")
    (launch / "trial_state" / "t2.pt").write(b"two")
    (launch / "trial_state" / "t2.pt").write(b"two, again")  # replaced whole
    assert (launch / "launch.json").read() == b'{"status": "running"}' and (launch / "launch.json").modified() > 0
    assert [child.name for child in Location(root, ("experiment",)).children(folders=True)] == ["L1"]
    states = launch / "trial_state"
    assert sorted(child.name for child in states.children(".pt")) == ["t1.pt", "t2.pt"]
    assert (states / "t2.pt").read() == b"two, again"
    aside = (states / "t1.pt").set_aside()
    assert aside.name.startswith("t1.pt.corrupt-") and aside.read() == b"one" and not (states / "t1.pt").exists()
    assert [child.name for child in states.children(".pt")] == ["t2.pt"]  # the set-aside file is no state
    (states / "t2.pt").delete()
    (states / "t2.pt").delete()  # a file already gone: nothing to do
    assert states.children(".pt") == []
    assert ("?" not in str(launch)) and str(launch).endswith("/experiment/L1")  # messages show no query options


def test_a_local_copy_stands_for_its_location_and_saves_back(root, tmp_path):
    state = Location(root, ("experiment", "L1", "trial_state", "t1.pt"))
    with LocalCopy(state) as copy:
        assert not copy.fetch()  # no state yet
        copy.path.parent.mkdir(parents=True, exist_ok=True)
        copy.path.write_bytes(b"epoch 1")
        copy.save()
        if state.local is not None:
            assert copy.path == state.local  # on a local filesystem the copy is the file itself
        else:
            assert not copy.path.is_relative_to(tmp_path)  # behind a URI, a private temporary file
    assert state.read() == b"epoch 1"
    with LocalCopy(state) as copy:
        assert copy.fetch() and copy.path.read_bytes() == b"epoch 1"
        temporary = copy.path
    assert state.local is not None or not temporary.exists()  # the temporary copy is gone


def test_a_storage_pyarrow_cannot_open_is_an_input_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("PRIVSWEEP_STORAGE", "nosuchscheme://bucket/prefix?secret=1")
    with pytest.raises(InputError, match=r"PRIVSWEEP_STORAGE=nosuchscheme://bucket/prefix: pyarrow cannot open it") as error:
        storage_root()
    assert "secret" not in str(error.value)


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray cluster of two real nodes (a head and a second raylet) on this machine."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_every_node_must_read_the_storage_or_the_launch_is_refused(two_nodes, tmp_path):
    """Both nodes share this machine's disk, so the real check passes (and leaves no marker);
    a node that reads nothing there, as one with a disk of its own would, is named in the
    refusal."""
    import ray

    experiment = Location(str(tmp_path / "runs"), ("experiment",))
    check_storage_shared(experiment)
    assert experiment.children() == []
    head = ray.get_runtime_context().get_node_id()  # the driver runs on the head

    def read_on_the_head_only(marker: Location) -> bytes | None:
        return marker.read() if ray.get_runtime_context().get_node_id() == head else None

    with pytest.raises(InputError, match="is not shared by every Ray node") as error:
        check_storage_shared(experiment, read_on_the_head_only)
    [other] = [node for node in ray.nodes() if node["Alive"] and node["NodeID"] != head]
    assert other["NodeID"][:8] in str(error.value) and head[:8] not in str(error.value)
    assert "PRIVSWEEP_STORAGE" in str(error.value) and experiment.children() == []
