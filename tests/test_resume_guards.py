"""`--resume` continues only the configuration a launch recorded, only one driver runs a launch
at a time, and a damaged launch record is named, not a traceback. Each refusal comes before
Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from sweeps.launcher import Launch, driver_lock_path
from sweeps.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
SPEC = {
    "name": "guarded",
    "method": "noisy_arl",
    "dataset": {"name": "synthetic", "task": "shape", "private": "color", "options": {"train_size": 64, "test_size": 32, "image_size": 16}},
    "model": {"backbone": "small_cnn", "split": 2},
    "train": {"epochs": 1, "batch_size": 32},
    "search_space": {"sigma": {"uniform": [0.1, 2.0]}},
    "search": {"sampler": "random", "num_samples": 2, "max_concurrent": 1, "seed": 0},
}


@pytest.fixture
def launched(tmp_path, monkeypatch) -> tuple[Path, Launch, dict[str, str]]:
    """A spec and the record of its unfinished launch, as `sweeps run` leaves them."""
    env = {"PRIVSWEEP_HOME": str(tmp_path / "home"), "PRIVSWEEP_DATA": str(tmp_path / "data")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec_path = tmp_path / "guarded.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    spec = load_spec(spec_path, [])
    launch = Launch("L1", spec.experiment, "0", "sqlite:///unused.db", "parent", "study", spec.model_dump(mode="json", by_alias=True))
    launch.save()
    return spec_path, launch, env


def resume(spec: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps", "run", str(spec), *flags, "--resume"], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_resume_with_an_edited_spec_or_set_is_refused_naming_the_fields(launched):
    spec, _, env = launched
    result = resume(spec, env, "--set", "train.lr=0.5", "--set", "params.sigma=2.0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "different configuration from launch L1" in result.stderr
    assert "train.lr: 0.001 in the launch, 0.5 now" in result.stderr and "params.sigma" in result.stderr
    edited = yaml.safe_load(spec.read_text())
    edited["train"]["batch_size"] = 16
    spec.write_text(yaml.safe_dump(edited))
    result = resume(spec, env)
    assert result.returncode == 2 and "train.batch_size: 32 in the launch, 16 now" in result.stderr


def test_a_second_driver_of_a_running_launch_exits_2(launched):
    spec, launch, env = launched
    with FileLock(str(driver_lock_path(launch))):  # the first driver, still running
        result = resume(spec, env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "launch L1 is being run by another driver" in result.stderr


def test_a_damaged_launch_record_is_named(launched):
    spec, launch, env = launched
    record = launch.location.local / "launch.json"
    record.write_text(record.read_text()[:40])  # cut short
    result = resume(spec, env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"the launch record {record} is damaged" in result.stderr
