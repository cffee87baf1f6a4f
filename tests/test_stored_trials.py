"""Benchmarks keep finished trials and reuse them only for the same overrides and the same code
(`benchmarks/stored_trials.py`), so a 6-hour benchmark resumes across sittings without ever
mixing numbers of two code versions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import methods_table  # noqa: E402
import stored_trials  # noqa: E402
from stored_trials import StoredTrials, code_fingerprint  # noqa: E402

METRICS = {"utility/acc": 0.9, "privacy/leak_acc": 0.7, "attack/converged/recon/mirror": 1.0, "time/attack_s": 12.0}


def test_a_stored_trial_is_found_by_its_overrides_in_any_order_and_survives_a_reload(tmp_path):
    path = tmp_path / "table.jsonl"
    store = StoredTrials(path, "abc")
    store.put(["method=none", "train.seed=0"], METRICS)
    again = StoredTrials(path, "abc")
    assert again.get(["train.seed=0", "method=none"]) == METRICS
    assert again.get(["method=none", "train.seed=1"]) is None


def test_trials_of_other_code_are_left_aside_and_a_line_cut_by_a_kill_is_skipped(tmp_path):
    path = tmp_path / "table.jsonl"
    StoredTrials(path, "old").put(["method=none"], METRICS)
    StoredTrials(path, "new").put(["method=disco"], METRICS)
    with path.open("a") as file:
        file.write('{"key": "[\\"method=maxent\\"]", "code": "new", "metr')  # killed mid-write
    store = StoredTrials(path, "new")
    assert store.get(["method=none"]) is None  # same overrides, other code: never reused
    assert store.get(["method=disco"]) == METRICS
    assert store.left_aside == 1
    assert "1 of other code left aside" in store.describe()


def test_the_fingerprint_changes_with_any_trainables_file_and_with_the_spec(tmp_path):
    (tmp_path / "trainables" / "attacks").mkdir(parents=True)
    module = tmp_path / "trainables" / "attacks" / "suite.py"
    module.write_text("EPOCHS = 30\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: a\n")
    before = code_fingerprint(spec, tmp_path)
    assert code_fingerprint(spec, tmp_path) == before
    module.write_text("EPOCHS = 31\n")
    after_code = code_fingerprint(spec, tmp_path)
    (tmp_path / "trainables" / "tracking.py").write_text("URI = 'a'\n")  # launcher side: no number passes through it
    assert code_fingerprint(spec, tmp_path) == after_code
    spec.write_text("name: b\n")
    assert len({before, after_code, code_fingerprint(spec, tmp_path)}) == 3


def table_args(tmp_path, stored_only: bool) -> argparse.Namespace:
    args = argparse.Namespace(epochs=2, set=[], full=False, seeds=[0, 1], stored_only=stored_only)
    args.store = StoredTrials(tmp_path / "table.jsonl", "code")
    return args


def test_the_methods_table_runs_only_the_trials_not_stored(tmp_path, monkeypatch):
    ran = []

    class FakeTrial:  # the real trial is minutes; what is tested here is which seeds run
        def __init__(self, config):
            ran.append(config.train.seed)

        def run(self):
            return dict(METRICS, **{"utility/acc": 0.5 + len(ran) / 10}), None

    monkeypatch.setattr(methods_table, "Trial", FakeTrial)
    args = table_args(tmp_path, stored_only=False)
    first = methods_table.run_seeds("none", {}, args)
    assert ran == [0, 1]
    args = table_args(tmp_path, stored_only=False)
    args.seeds = [0, 1, 2]
    second = methods_table.run_seeds("none", {}, args)
    assert ran == [0, 1, 2]  # seeds 0 and 1 came from the file
    assert [m["utility/acc"] for m in second[:2]] == [m["utility/acc"] for m in first]
    assert methods_table.summary(second, methods_table.AT_CAP) == "none"


def test_stored_only_runs_nothing_and_a_missing_cell_reads_not_run(tmp_path, monkeypatch):
    def no_trial(config):
        raise AssertionError("--stored-only ran a trial")

    monkeypatch.setattr(methods_table, "Trial", no_trial)
    args = table_args(tmp_path, stored_only=True)
    cell = methods_table.run_seeds("maxent", {"alpha": 0.1}, args)
    assert cell == []
    assert methods_table.summary(cell, "privacy/leak_acc") == "not run"
    assert methods_table.compare(cell, [METRICS], "privacy/leak_acc") == "unknown"


@pytest.mark.parametrize("name", ["methods_table", "pp_defenders"])
def test_each_benchmark_defaults_to_its_own_results_file(name):
    parser = argparse.ArgumentParser()
    stored_trials.add_arguments(parser, name)
    assert parser.parse_args([]).results == stored_trials.RESULTS / f"{name}.jsonl"
