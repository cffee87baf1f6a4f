"""Benchmarks keep finished trials and reuse them only for the same overrides and the same code
(`benchmarks/stored_trials.py`), so a 6-hour benchmark resumes across sittings without ever
mixing numbers of two code versions."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import defense_convergence  # noqa: E402
import init_comparison  # noqa: E402
import methods_table  # noqa: E402
import proxy_calibration  # noqa: E402
import stored_trials  # noqa: E402
from stored_trials import StoredTrials, code_fingerprint  # noqa: E402

SPEC = methods_table.SPEC
METRICS = {"utility/acc": 0.9, "privacy/leak_acc": 0.7, "attack/converged/recon/mirror": 1.0, "time/attack_s": 12.0}


def test_a_stored_trial_is_found_by_its_overrides_in_any_order_and_survives_a_reload(tmp_path):
    path = tmp_path / "table.jsonl"
    store = StoredTrials(path, SPEC, "abc")
    store.put(["method=none", "search_space=null", "params={}", "train.seed=0"], METRICS)
    again = StoredTrials(path, SPEC, "abc")
    assert again.get(["train.seed=0", "search_space=null", "params={}", "method=none"]) == METRICS
    assert again.get(["method=none", "search_space=null", "params={}", "train.seed=1"]) is None


def test_trials_of_other_code_are_left_aside_and_a_line_cut_by_a_kill_is_skipped(tmp_path):
    path = tmp_path / "table.jsonl"
    StoredTrials(path, SPEC, "old").put(["train.seed=0"], METRICS)
    StoredTrials(path, SPEC, "new").put(["train.seed=1"], METRICS)
    with path.open("a") as file:
        file.write('{"key": "[\\"method=maxent\\"]", "code": "new", "metr')  # killed mid-write
    store = StoredTrials(path, SPEC, "new")
    assert store.get(["train.seed=0"]) is None  # same overrides, other code: never reused
    assert store.get(["train.seed=1"]) == METRICS
    assert store.left_aside == 1
    assert "1 of other code left aside" in store.describe()


def test_a_record_after_a_line_cut_by_a_kill_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "table.jsonl"
    StoredTrials(path, SPEC, "code").put(["train.seed=0"], METRICS)
    with path.open("a") as file:
        file.write('{"key": "0123456789abcdef", "co')  # killed mid-write, no newline
    StoredTrials(path, SPEC, "code").put(["train.seed=1"], METRICS)
    store = StoredTrials(path, SPEC, "code")
    assert store.get(["train.seed=0"]) == METRICS and store.get(["train.seed=1"]) == METRICS


def test_one_trial_is_one_key_whatever_the_override_order_the_specs_comments_or_its_search(tmp_path):
    store = StoredTrials(tmp_path / "table.jsonl", SPEC, "code")
    assert store.key(["method=none", "search_space=null", "params={}", "train.seed=1"]) == store.key(["train.seed=1", "search_space=null", "params={}", "method=none"])
    assert store.key(["train.seed=0", "train.seed=1"]) == store.key(["train.seed=1"]) != store.key(["train.seed=1", "train.seed=0"])
    assert store.key(['params={"sigma": 1.0}']) != store.key(['params={"sigma": 2.0}'])
    assert store.key(["train.seed=0"]) == store.key([])  # the spec's own value, said again
    other = tmp_path / "quickstart.yaml"  # no trial reads the search section: a new sampler keeps every stored trial
    other.write_text("# a comment\n" + SPEC.read_text().replace("sampler: gp", "sampler: random"))
    assert StoredTrials(tmp_path / "table.jsonl", other, "code").key(["train.seed=0"]) == store.key(["train.seed=0"])
    other.write_text(SPEC.read_text().replace("epochs: 60,", "epochs: 61,"))
    assert StoredTrials(tmp_path / "table.jsonl", other, "code").key(["train.seed=0"]) != store.key(["train.seed=0"])


def failing_for_seed_1(spec, overrides):
    """A stand-in trial (picklable, for the pool) that fails for seed 1 and counts its threads."""
    import torch

    if "train.seed=1" in overrides:
        raise ValueError("diverged")
    return dict(METRICS, threads=float(torch.get_num_threads()))


def dying_for_seed_1(spec, overrides):
    """A stand-in trial whose worker dies for seed 1 (as under the OOM killer)."""
    if "train.seed=1" in overrides:
        os._exit(1)
    time.sleep(0.5)
    return METRICS


def test_sigterm_kills_the_workers_with_the_run(tmp_path):
    """`kill <pid>` of a benchmark stops its trials too: a worker left behind trains on, on
    a core of its own, for a result nobody stores."""
    (tmp_path / "forever.py").write_text(
        "import os, pathlib, time\n"
        "def run(spec, overrides):\n"
        "    pathlib.Path(os.environ['PIDS'], str(os.getpid())).touch()\n"
        "    time.sleep(600)\n"
    )
    pids = tmp_path / "pids"
    pids.mkdir()
    script = (f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(SPEC.parent.parent / 'benchmarks')!r}]\n"
              "import forever, stored_trials\n"
              f"store = stored_trials.StoredTrials(stored_trials.Path({str(tmp_path / 't.jsonl')!r}), "
              f"stored_trials.Path({str(SPEC)!r}), 'code')\n"
              "stored_trials.run_missing(store, stored_trials.Path(''), [['train.seed=0'], ['train.seed=1']], 2, run=forever.run)\n")
    driver = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PIDS": str(pids)})
    deadline = time.monotonic() + 120
    while len(list(pids.iterdir())) < 2:
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    workers = [int(p.name) for p in pids.iterdir()]
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its run"
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead, only not yet reaped
        return stat.read().split(") ")[-1][0] != "Z"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_trial_loses_none_of_the_others_and_is_raised_at_the_end(tmp_path, workers):
    import torch

    threads = torch.get_num_threads()
    store = StoredTrials(tmp_path / "table.jsonl", SPEC, "code")
    jobs = [["train.seed=0"], ["train.seed=1"], ["train.seed=2"]]
    with pytest.raises(RuntimeError, match="1 of 3 trial.*failed.*train.seed=1") as failure:
        stored_trials.run_missing(store, SPEC, jobs, workers, run=failing_for_seed_1)
    assert "ValueError: diverged" in str(failure.value) and "failing_for_seed_1" in str(failure.value)  # with its traceback
    reloaded = StoredTrials(tmp_path / "table.jsonl", SPEC, "code")
    assert reloaded.get(["train.seed=0"]) is not None and reloaded.get(["train.seed=2"]) is not None
    assert reloaded.get(["train.seed=1"]) is None  # runs again next time
    # one torch thread per trial whatever --workers (CPU numbers depend on it); this process gets its own back
    assert reloaded.get(["train.seed=0"])["threads"] == 1
    assert torch.get_num_threads() == threads


def test_a_worker_that_dies_stops_the_run_with_an_error_not_a_hang(tmp_path):
    store = StoredTrials(tmp_path / "table.jsonl", SPEC, "code")
    with pytest.raises(BrokenProcessPool):
        stored_trials.run_missing(store, SPEC, [["train.seed=0"], ["train.seed=1"]], 2, run=dying_for_seed_1)


def test_the_fingerprint_changes_with_any_trainables_file_but_the_launcher_side(tmp_path):
    (tmp_path / "trainables" / "attacks").mkdir(parents=True)
    module = tmp_path / "trainables" / "attacks" / "suite.py"
    module.write_text("EPOCHS = 30\n")
    before = code_fingerprint(tmp_path)
    module.write_text('"""The suite."""\n\nEPOCHS = 30  # measured\n')  # a docstring and a comment: no number moves
    assert code_fingerprint(tmp_path) == before
    module.write_text("EPOCHS = 31\n")
    after_code = code_fingerprint(tmp_path)
    assert after_code != before
    (tmp_path / "trainables" / "tracking.py").write_text("URI = 'a'\n")  # launcher side: no number passes through it
    assert code_fingerprint(tmp_path) == after_code
    (tmp_path / "trainables" / "attacks" / "tracking.py").write_text("URI = 'a'\n")  # not launcher side: a subpackage's
    assert code_fingerprint(tmp_path) != after_code


def table_args(tmp_path, stored_only: bool, seeds=(0, 1)) -> argparse.Namespace:
    args = argparse.Namespace(epochs=2, set=[], full=False, seeds=list(seeds), stored_only=stored_only, workers=1,
                              methods=["maxent"], baseline=True, controls_only=False, wanted=[])
    args.store = StoredTrials(tmp_path / "table.jsonl", SPEC, "code")
    return args


def fake_trials(ran: list[list[str]]):
    """A stand-in for the minutes-long real trial: what is tested here is which trials run."""

    def run(spec, overrides):
        ran.append(overrides)
        return dict(METRICS, **{"utility/acc": 0.5 + len(ran) / 100})

    return run


def test_the_methods_table_runs_only_the_trials_it_needs_and_the_store_lacks(tmp_path, monkeypatch, capsys):
    ran: list[list[str]] = []
    monkeypatch.setattr(stored_trials, "run_trial", fake_trials(ran))
    methods_table.run_then_print(methods_table.tables, table_args(tmp_path, stored_only=False))
    # none at split 2 and maxent at its two settings, two seeds each
    assert len(ran) == 6 and {next(o for o in job if o.startswith("train.seed=")) for job in ran} == {"train.seed=0", "train.seed=1"}
    first = capsys.readouterr().out
    assert "not run" not in first and "| maxent | alpha=0.9 |" in first
    methods_table.run_then_print(methods_table.tables, table_args(tmp_path, stored_only=True, seeds=(0, 1, 2)))
    assert "| maxent | alpha=0.9 (2 of 3 seeds) |" in capsys.readouterr().out  # a partial cell says so
    methods_table.run_then_print(methods_table.tables, table_args(tmp_path, stored_only=False, seeds=(0, 1, 2)))
    assert len(ran) == 9  # seeds 0 and 1 came from the file: only seed 2 of each cell ran


def test_after_a_failed_trial_the_table_of_the_others_is_still_printed_then_the_failure_raised(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stored_trials, "run_trial", failing_for_seed_1)
    with pytest.raises(RuntimeError, match="3 of 6 trial"):
        methods_table.run_then_print(methods_table.tables, table_args(tmp_path, stored_only=False))
    assert "| maxent | alpha=0.9 (1 of 2 seeds) |" in capsys.readouterr().out


def test_stored_only_runs_nothing_and_a_missing_cell_reads_not_run(tmp_path, monkeypatch, capsys):
    def no_trial(spec, overrides):
        raise AssertionError("--stored-only ran a trial")

    monkeypatch.setattr(stored_trials, "run_trial", no_trial)
    args = table_args(tmp_path, stored_only=True)
    methods_table.run_then_print(methods_table.tables, args)
    assert "not run" in capsys.readouterr().out
    assert len(args.wanted) == 6
    assert methods_table.summary([], "privacy/leak_acc") == "not run"
    assert methods_table.compare([], [METRICS], "privacy/leak_acc") == "unknown"


@pytest.mark.parametrize("name", ["methods_table", "pp_defenders"])
def test_each_benchmark_defaults_to_its_own_results_file(name):
    parser = argparse.ArgumentParser()
    stored_trials.add_arguments(parser, name)
    assert parser.parse_args([]).results == stored_trials.RESULTS / f"{name}.jsonl"


def test_two_workers_run_real_trials_in_processes_of_their_own_and_store_both(tmp_path, write_spec):
    spec = write_spec()  # the tiny synthetic trial, real: what is tested is the process pool's round trip
    store = StoredTrials(tmp_path / "table.jsonl", spec, "code")
    jobs = [["train.seed=0"], ["train.seed=1"], ["train.seed=0"]]
    stored_trials.run_missing(store, spec, jobs, workers=2)
    reloaded = StoredTrials(tmp_path / "table.jsonl", spec, "code")
    first, second = reloaded.get(["train.seed=0"]), reloaded.get(["train.seed=1"])
    assert 0 <= first["utility/acc"] <= 1 and "privacy/leak_acc:ci95_hi" in second
    assert stored_trials.CURVES not in first  # the curves are kept beside the metrics, per epoch
    curves = reloaded.curves[reloaded.key(["train.seed=0"])]
    assert len(curves) == first["train/epochs_run"] and "val/utility_acc" in curves[0] and "train/task_loss" in curves[0]
    assert len((tmp_path / "table.jsonl").read_text().splitlines()) == 2  # the repeated job ran once
    stored_trials.run_missing(reloaded, spec, jobs, workers=2)
    assert len((tmp_path / "table.jsonl").read_text().splitlines()) == 2  # nothing left to run


def test_scratch_against_pretrained_reuses_the_methods_tables_scratch_cells_and_adds_the_pretrained_ones(tmp_path, monkeypatch, capsys):
    ran: list[list[str]] = []
    monkeypatch.setattr(stored_trials, "run_trial", fake_trials(ran))
    methods_table.run_then_print(methods_table.tables, table_args(tmp_path, stored_only=False, seeds=(0,)))
    table_trials = len(ran)  # none and maxent's two settings, the scratch start among them
    args = argparse.Namespace(**{**vars(table_args(tmp_path, stored_only=False, seeds=(0,))), "epochs": 2, "curves": None})
    methods_table.run_then_print(init_comparison.tables, args)
    [pretrained] = ran[table_trials:]  # the scratch cell came from the store
    assert "train.init=pretrained" in pretrained and "params={\"alpha\": 0.9}" in pretrained
    out = capsys.readouterr().out
    assert "| maxent | alpha=0.9 | scratch |" in out and "| maxent | alpha=0.9 | pretrained |" in out
    assert "| maxent | unknown | unknown | unknown | scratch |" in out  # fake trials carry no intervals: no verdict


@pytest.mark.parametrize(("fresh", "proxy", "verdict"), [
    (0.85, 0.84, "PASS"),
    (0.85, 0.70, "FAIL: leakage proxy 0.150 below"),  # the defense's own adversary never caught up
    (0.80, 0.86, "FAIL: leakage proxy 0.060 above"),  # the fresh judges are the weaker: they understate leakage
])
def test_proxy_calibration_fails_a_proxy_far_from_the_fresh_attackers_on_either_side(fresh, proxy, verdict):
    metrics = {"utility/acc": 0.99, "privacy/leak_acc": fresh, "privacy/proxy_leak_acc": proxy}
    assert proxy_calibration.verdict(metrics)["calibrated"].startswith(verdict)


def convergence_row(value: float, passed: bool, unconverged: list[list[str]], converged: bool = True) -> dict:
    """A defense_convergence row whose default and reference both read `value`."""
    shown = dict.fromkeys(defense_convergence.SHOWN, value)
    return {
        "default": shown, "reference": shown, "leak_by": "server_arch", "ssim_by": "mirror", "leak_ref_by": "server_arch",
        "ssim_ref_by": "mirror", "leak_ci": [value - 0.01, value + 0.01], "leak_ref_ci": [value - 0.01, value + 0.01],
        "leak_gap_se": 0.0, "ssim_gap_se": None, "epochs": {"train": 40}, "reference_epochs": {"train": 80}, "converged": converged,
        "schedule": {"0": [20, 20]}, "attackers_unconverged": unconverged, "train_s": 60.0, "attack_s": 200.0, "trial_s": 260.0,
        "reference_train_s": 120.0, "reference_trial_s": 320.0, "pass": passed,
    }


def test_defense_convergence_prints_stored_rows_runs_none_of_them_and_fails_while_one_is_missing(tmp_path, monkeypatch, capsys):
    def no_row(spec, overrides):
        raise AssertionError("a stored row ran again")

    results = tmp_path / "defense_convergence.jsonl"
    store = StoredTrials(results, defense_convergence.SPEC, code_fingerprint())
    store.put(defense_convergence.trial_overrides("maxent:alpha=0.9", ["dataset.train_size=2500"]), convergence_row(0.8, True, [[], ["recon/fc"]]))
    common = ["--results", str(results), "--set", "dataset.train_size=2500"]
    monkeypatch.setattr(defense_convergence, "row", no_row)
    assert defense_convergence.main(["--configs", "maxent:alpha=0.9", *common]) == 0
    first = capsys.readouterr().out
    assert "| maxent:alpha=0.9 | 0.800 / 0.800 |" in first and first.rstrip().endswith("| PASS |")
    assert "| yes / no (recon/fc) |" in first
    assert defense_convergence.main(["--configs", "maxent:alpha=0.9", "adv_recon:lambda1=10.0", "--stored-only", *common]) == 1
    out = capsys.readouterr().out
    assert "| adv_recon:lambda1=10.0 | not run |" in out and "| maxent:alpha=0.9 |" in out
    # another slice is another configuration: the stored row is not its row
    assert defense_convergence.main(["--configs", "maxent:alpha=0.9", "--stored-only", "--results", str(results)]) == 1


def test_a_default_at_its_cap_never_passes_defense_convergence_however_stable(tmp_path, capsys):
    """Within its targets at twice the training, but stopped by the cap, not the rule: flagged."""
    results = tmp_path / "defense_convergence.jsonl"
    store = StoredTrials(results, defense_convergence.SPEC, code_fingerprint())
    for config, passed in (("maxent:alpha=0.9", True), ("adv_recon:lambda1=10.0", False)):
        store.put(defense_convergence.trial_overrides(config, []), convergence_row(0.8, passed, [[], []], converged=False))
    argv = ["--configs", "maxent:alpha=0.9", "adv_recon:lambda1=10.0", "--stored-only", "--results", str(results)]
    assert defense_convergence.main(argv) == 1
    out = capsys.readouterr().out
    assert "| flagged at its cap; stable at 2x |" in out and "| flagged at its cap; moves at 2x |" in out and "PASS" not in out


def test_defense_convergence_stores_each_row_it_runs_and_runs_it_once(tmp_path, monkeypatch, capsys):
    ran: list[str] = []

    def fake_row(spec, overrides):
        ran.append(next(o for o in overrides if o.startswith("method=")))
        curves = {"default": [{"val/utility_acc": 0.5}], "reference": [{"val/utility_acc": 0.6}]}
        return {**convergence_row(0.5, "method=maxent" in overrides, [[], []]), stored_trials.CURVES: curves}

    monkeypatch.setattr(defense_convergence, "row", fake_row)
    argv = ["--configs", "maxent:alpha=0.9", "adv_recon:lambda1=10.0", "--results", str(tmp_path / "rows.jsonl")]
    assert defense_convergence.main(argv) == 1  # adv_recon's row fails its target
    assert sorted(ran) == ["method=adv_recon", "method=maxent"]
    assert defense_convergence.main(argv) == 1 and len(ran) == 2  # both came from the file
    out = capsys.readouterr().out
    assert "| adv_recon:lambda1=10.0 | 0.500 / 0.500 |" in out and "not run" not in out
    store = StoredTrials(tmp_path / "rows.jsonl", defense_convergence.SPEC, code_fingerprint())
    key = store.key(defense_convergence.trial_overrides("adv_recon:lambda1=10.0", []))
    assert store.curves[key]["reference"] == [{"val/utility_acc": 0.6}]  # the curves, beside the row


def test_defense_convergence_sets_each_gap_against_the_defaults_spread_over_seeds(tmp_path, monkeypatch, capsys):
    """Defaults at seeds 1 and 2 run alone, once; the gap of seed 0's pair is given in units of
    the spread of a difference of two endpoints (the seeds' sd times sqrt 2)."""
    ran: list[list[str]] = []

    def fake_default(spec, overrides):
        ran.append(overrides)
        seed = int(next(o for o in overrides if o.startswith("train.seed=")).split("=")[1])
        return {"privacy/leak_acc": 0.80 + 0.01 * seed, "recon/ssim": 0.80}

    def no_row(spec, overrides):
        raise AssertionError("the stored pair ran again")

    results = tmp_path / "defense_convergence.jsonl"
    pair = convergence_row(0.8, False, [[], []])
    pair["reference"] = {**pair["reference"], "privacy/leak_acc": 0.83}
    StoredTrials(results, defense_convergence.SPEC, code_fingerprint()).put(defense_convergence.trial_overrides("maxent:alpha=0.9", []), pair)
    monkeypatch.setattr(stored_trials, "run_trial", fake_default)
    monkeypatch.setattr(defense_convergence, "row", no_row)
    argv = ["--configs", "maxent:alpha=0.9", "--seeds", "1", "2", "--results", str(results)]
    assert defense_convergence.main(argv) == 1  # converged, moves .03: FAIL whatever the spread
    assert defense_convergence.main(argv) == 1 and len(ran) == 2  # the seeds' defaults came from their file
    assert sorted(o[-1] for o in ran) == ["train.seed=1", "train.seed=2"]
    out = capsys.readouterr().out.strip().splitlines()[-1]
    # leakage .80, .81, .82: sd .01, so the .03 gap is .03 / (.01 * 1.414) = 2.1 units; SSIM: no spread
    assert "| 0.810 ± 0.010, 0.800 ± 0.000 (3) | 2.1, – |" in out and "FAIL (converged, moves at 2x)" in out
    assert (tmp_path / "defense_convergence_seeds.jsonl").exists()


def test_defense_convergence_runs_no_seed_twice_that_is_the_pairs_own(tmp_path, monkeypatch, capsys):
    """With the pair at seed 1 (`--set train.seed=1`), `--seeds 0 1` runs seed 0 alone, not seed 1."""
    ran: list[list[str]] = []

    def fake_default(spec, overrides):
        ran.append(overrides)
        return {"privacy/leak_acc": 0.81, "recon/ssim": 0.80}

    results = tmp_path / "defense_convergence.jsonl"
    overrides = defense_convergence.trial_overrides("maxent:alpha=0.9", ["train.seed=1"])
    StoredTrials(results, defense_convergence.SPEC, code_fingerprint()).put(overrides, convergence_row(0.8, True, [[], []]))
    monkeypatch.setattr(stored_trials, "run_trial", fake_default)
    argv = ["--configs", "maxent:alpha=0.9", "--set", "train.seed=1", "--seeds", "0", "1", "--results", str(results)]
    assert defense_convergence.main(argv) == 0
    assert [o[-1] for o in ran] == ["train.seed=0"]
    assert "| 0.805 ± 0.007, 0.800 ± 0.000 (2) |" in capsys.readouterr().out
