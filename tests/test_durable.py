"""Files safe to lose power over: a trial state that is empty, cut short, random or bit-flipped
is never loaded; it is moved aside, the run says why, and the trial starts from scratch."""

from __future__ import annotations

import logging
import os
import stat

import pytest
import torch
from conftest import tiny_config
from mlflow.tracking import MlflowClient

from trainables.durable import UnreadableState, append_durably, load_state, write_atomically
from trainables.schema import STATE_SET_ASIDE_TAG
from trainables.storage import LocalCopy, Location
from trainables.tracking import TrialRun
from trainables.trial import Trial
from trainables.tune_trainable import resumed_trial


def flip_a_bit(data: bytes) -> bytes:
    """One bit of the last tensor payload byte flipped: the file still unpickles."""
    position = len(data) - 100
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


DAMAGE = {
    "empty": lambda data: b"",
    "truncated": lambda data: data[: len(data) // 2],
    "random": lambda data: os.urandom(len(data)),
    "bit-flipped": flip_a_bit,
}
REASONS = {
    "empty": "the file is empty",
    "truncated": "checksum does not match",
    "random": "not a state of tensors",
    "bit-flipped": "checksum does not match",
}


@pytest.fixture(scope="module")
def saved_state(tmp_path_factory):
    config = tiny_config()
    trial = Trial(config)
    trial.train_epoch()
    path = tmp_path_factory.mktemp("state") / "t.pt"
    trial.save(path)
    return config, path.read_bytes(), trial.state_dict()


def test_a_bit_flip_that_still_unpickles_is_caught_by_the_checksum(saved_state, tmp_path):
    _, data, _ = saved_state
    header, _, payload = data.partition(b"\n")
    flipped = flip_a_bit(data)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(flipped.partition(b"\n")[2])  # the payload without its checksum loads...
    assert torch.load(plain, weights_only=True)["epoch"] == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(flipped)
    with pytest.raises(UnreadableState, match="checksum does not match"):  # ...the checksum does not let it
        load_state(bad, torch.device("cpu"))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_an_unusable_state_is_set_aside_and_the_trial_starts_from_scratch(damage, saved_state, tmp_path, caplog):
    config, data, _ = saved_state
    state = tmp_path / "trial_state" / "t1.pt"
    state.parent.mkdir()
    state.write_bytes(DAMAGE[damage](data))
    size = state.stat().st_size
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = MlflowClient(uri).create_experiment("x", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = MlflowClient(uri).create_run(experiment).info.run_id
    run = TrialRun.open(uri, experiment, parent, "t1", "L", "none", "none", {"a": 1}, replicate=0)
    location = Location(str(tmp_path), ("trial_state", "t1.pt"))
    with caplog.at_level(logging.WARNING), LocalCopy(location) as copy:
        trial = resumed_trial(config, None, copy, run)
    assert trial.epoch == 0 and trial.history == []  # from scratch
    assert not state.exists()
    [aside] = state.parent.glob("t1.pt.corrupt-*")
    assert aside.stat().st_size == size  # kept as it was, for a post-mortem
    warning = caplog.text
    assert str(state) in warning and f"({size} bytes)" in warning and REASONS[damage] in warning
    tag = MlflowClient(uri).get_run(run.run_id).data.tags[STATE_SET_ASIDE_TAG]
    assert tag.startswith(aside.name) and REASONS[damage] in tag
    trial.train_epoch()
    trial.save(state)  # the next epoch's state is a good one again
    with LocalCopy(location) as copy:
        assert resumed_trial(config, None, copy, run).epoch == 1


def test_a_good_state_resumes_and_a_state_of_another_trial_is_refused(saved_state, tmp_path):
    config, data, state_dict = saved_state
    good = tmp_path / "good.pt"
    good.write_bytes(data)
    restored = Trial(config)
    restored.restore(good)
    assert restored.epoch == 1 and restored.history == state_dict["history"]
    old = {key: value for key, value in state_dict.items() if key != "halvings"}  # a state from before annealing
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(UnreadableState, match="does not fit this trial.*halvings"):
        Trial(config).restore(tmp_path / "old.pt")


def test_files_are_replaced_whole_and_created_private(tmp_path):
    path = tmp_path / "launch.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["launch.json"]  # no temporary left behind


def test_an_append_after_a_line_cut_short_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"a": 1}\n{"b": ')  # a kill mid-write
    append_durably(path, '{"c": 3}')
    assert path.read_text().splitlines() == ['{"a": 1}', '{"b": ', '{"c": 3}']
