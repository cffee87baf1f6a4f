"""`seed` fixes everything (docs/design.md, protocol point 5), and a checkpointed trial ends with
the same metrics as an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from trainables.trial import Trial


def without_times(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not k.startswith("time/")}


def run(config) -> tuple[dict[str, float], list[dict[str, float]]]:
    trial = Trial(config)
    metrics, _ = trial.run()
    return without_times(metrics), trial.history


@pytest.fixture(scope="module")
def seed0_run():
    return run(tiny_config())


def test_same_seed_gives_identical_metrics(seed0_run):
    torch.manual_seed(12345)  # whatever the global RNG holds before, the seed decides
    again = run(tiny_config())
    assert again[0] == seed0_run[0]
    assert again[1] == seed0_run[1]  # per-epoch metrics too
    assert "recon/mse" in again[0] and "utility/acc" in again[0]


def test_different_seed_gives_different_metrics(seed0_run):
    other, other_history = run(tiny_config(train__seed=1))
    assert other.keys() == seed0_run[0].keys()
    continuous = ["recon/mse", "recon/l1", "recon/ssim", "train/task_loss"]
    merged_0 = {**seed0_run[0], **seed0_run[1][-1]}
    merged_1 = {**other, **other_history[-1]}
    assert all(merged_0[k] != merged_1[k] for k in continuous), (merged_0, merged_1)


def test_checkpoint_after_epoch_one_resumes_to_the_same_result(tmp_path):
    config = tiny_config(train__epochs=2)
    uninterrupted, uninterrupted_history = run(config)

    first = Trial(config)
    first.train_epoch()
    assert first.epoch == 1
    checkpoint = tmp_path / "trial.pt"
    first.save(checkpoint)
    del first
    torch.manual_seed(999)  # the process that resumes has its own RNG state

    resumed = Trial(config)
    resumed.restore(checkpoint)
    assert resumed.epoch == 1
    assert len(resumed.history) == 1
    metrics, _ = resumed.run()
    assert resumed.epoch == 2
    assert without_times(metrics) == uninterrupted
    assert resumed.history == uninterrupted_history


def test_resumed_trial_does_not_repeat_training(tmp_path):
    """A trial restored after its last epoch goes straight to the attack: training state,
    including the deployed server, is exactly the checkpointed one (then recalibrated and
    attacked exactly as the uninterrupted trial is)."""
    config = tiny_config()
    trial = Trial(config)
    trial.train_epoch()
    trial.save(tmp_path / "done.pt")
    uninterrupted, _ = trial.run()
    expected = {k: v.clone() for k, v in trial.method.state_dict().items()}

    resumed = Trial(config)
    before = {k: v.clone() for k, v in resumed.method.state_dict().items()}
    assert any(not torch.equal(before[k], expected[k]) for k in expected)  # a fresh trial differs
    resumed.restore(tmp_path / "done.pt")
    calls = []
    original = resumed.method.train_step
    resumed.method.train_step = lambda *a: calls.append(1) or original(*a)
    metrics, _ = resumed.run()
    assert calls == []
    assert without_times(metrics) == without_times(uninterrupted)
    for key, value in expected.items():
        assert torch.equal(resumed.method.state_dict()[key], value), key


def test_a_checkpoint_holding_an_arbitrary_object_is_refused(tmp_path):
    """Checkpoints load as data (weights_only): a pickled object that would run code on load
    is an unreadable state naming the file, and is never executed."""
    from trainables.durable import UnreadableState

    trial = Trial(tiny_config())
    trial.train_epoch()
    good = tmp_path / "good.pt"
    trial.save(good)
    Trial(tiny_config()).restore(good)  # a real state loads as data
    marker = tmp_path / "ran"
    state = trial.state_dict()
    state["history"] = [Payload(str(marker))]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(UnreadableState, match="bad.pt .* not a state of tensors and plain containers"):
        Trial(tiny_config()).restore(bad)
    assert not marker.exists()


class Payload:
    """A pickle gadget: unpickling it would create the file `path`."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
