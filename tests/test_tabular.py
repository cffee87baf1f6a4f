"""The tabular benchmark's replay (benchmarks/tabular/replay.py) on a synthetic table whose
values are known: proposals land on the right grid rows, curves are the hypervolume of the
trials so far, the space-filling first generation is what NSGA-II evaluates first, and the
grid runner writes a complete table only. The real table is `grid.py`'s (hours of trials)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "tabular"))

import grid  # noqa: E402
import replay  # noqa: E402

from analysis.pareto import values_hypervolume  # noqa: E402
from sweeps.search_space import load_search_space  # noqa: E402
from sweeps.spec import load_spec  # noqa: E402


def synthetic_table(path: Path) -> Path:
    """The real grid's coordinates; utility falls with sigma and split, leakage falls with sigma
    and lambda, so the front is known to lie at high lambda."""
    rows = grid.configurations()
    sigma = np.array([r["sigma"] for r in rows])
    lam = np.array([r["lambda"] for r in rows])
    split = np.array([r["split"] for r in rows])
    utility = 0.99 - 0.01 * np.log1p(sigma) - 0.002 * split
    leak = 0.9 - 0.05 * np.log1p(sigma) - 0.02 * np.log10(lam / 0.001)
    table = pa.table({"sigma": sigma, "lambda": lam, "split": split, "utility/acc": utility, "privacy/leak_acc": leak,
                      "utility/chance": np.full(len(rows), 0.6)})
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    spec = load_spec(replay.SPEC)
    space = load_search_space(spec.search_space)
    table = replay.Table.read(synthetic_table(tmp_path_factory.mktemp("tab") / "t.parquet"), spec)
    return spec, space, table


def test_a_proposal_lands_on_the_nearest_grid_point_in_log_space_and_on_its_exact_split(setting):
    _, space, table = setting
    row = table.nearest({"params.sigma": 0.09, "params.lambda": 0.2, "model.split": 3}, space)
    # 0.09 is nearer to 0.138 than to 0.05 in log space (linearly it is nearer to 0.05)
    assert (table.coordinates["params.sigma"][row], table.coordinates["params.lambda"][row]) == (0.138, 0.1)
    assert table.coordinates["model.split"][row] == 3


def test_each_curve_point_is_the_hypervolume_of_the_trials_so_far_against_the_chance_reference(setting):
    _, space, table = setting
    curve, rows = replay.replay("random", 3, table, space, trials=15, budget=48)
    assert list(table.reference) == [0.6, 1.0]
    assert np.all(np.diff(curve) >= 0)
    for n in (1, 7, 15):
        assert curve[n - 1] == pytest.approx(values_hypervolume(table.values[rows[:n]], table.maximise, table.reference))
    again, rows_again = replay.replay("random", 3, table, space, trials=15, budget=48)
    assert rows_again == rows  # a sampler seed is a replay


def test_the_sobol_variant_evaluates_its_space_filling_design_first(setting):
    _, space, table = setting
    study = replay.study_for(replay.SOBOL, 0, 48, space)
    population = study.sampler.population_size
    design = replay.space_filling_design(space, population, 0)
    define = replay.DefineByRun(space)
    asked = []
    for _ in range(population):
        trial = study.ask()
        asked.append(define(trial))
        study.tell(trial, [0.9, 0.5])
    assert asked == design
    # space filling: every split is used, and the sigma design covers both halves of its log range
    assert {p["model.split"] for p in design} == {1, 2, 3}
    logs = [math.log(p["params.sigma"]) for p in design]
    middle = (math.log(0.05) + math.log(8.0)) / 2
    assert min(logs) < middle < max(logs)


def test_trials_to_reach_counts_from_one_and_never_reaching_is_infinite():
    curve = np.array([0.1, 0.2, 0.2, 0.35])
    assert replay.trials_to_reach(curve, 0.2) == 2
    assert replay.trials_to_reach(curve, 0.35) == 4
    assert math.isinf(replay.trials_to_reach(curve, 0.4))


def test_the_replay_command_prints_every_sampler_and_writes_the_plot(setting, tmp_path, capsys):
    table_path = synthetic_table(tmp_path / "t.parquet")
    code = replay.main(["--table", str(table_path), "--samplers", "random", "nsga2", "--seeds", "3", "--trials", "20", "--budget", "10"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| random |" in out and "| nsga2 |" in out
    assert (tmp_path / "hypervolume_vs_trials.png").stat().st_size > 10_000


def test_the_grid_writes_no_table_until_every_configuration_is_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(grid.stored_trials, "RESULTS", tmp_path)
    store = grid.stored_trials.StoredTrials(tmp_path / "tabular_demo.jsonl", grid.SPEC, grid.stored_trials.code_fingerprint())
    configs = grid.configurations()
    for config in configs[:-1]:
        store.put(grid.overrides_of(config, "demo"), {"utility/acc": 0.9, "privacy/leak_acc": 0.5})
    out = tmp_path / "t.parquet"
    assert grid.main(["--stored-only", "--out", str(out)]) == 1 and not out.exists()
    store.put(grid.overrides_of(configs[-1], "demo"), {"utility/acc": 0.8, "privacy/leak_acc": 0.4})
    assert grid.main(["--stored-only", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 72 and table.schema.metadata[b"train_size"] == b"2500"
    assert table.column("utility/acc").to_pylist()[-1] == 0.8


def test_with_k_running_each_proposal_is_made_with_k_minus_1_trials_unanswered(setting, monkeypatch):
    _, space, table = setting
    unanswered: list[int] = []
    study_for = replay.study_for

    def recording_study(*args):
        study = study_for(*args)
        ask = study.ask

        def counted_ask():
            unanswered.append(len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))))
            return ask()

        study.ask = counted_ask
        return study

    monkeypatch.setattr(replay, "study_for", recording_study)
    curve, rows = replay.replay("tpe", 0, table, space, trials=10, budget=48, concurrent=4)
    assert unanswered == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]
    assert len(curve) == len(rows) == 10
    assert curve[-1] == pytest.approx(values_hypervolume(table.values[rows], table.maximise, table.reference))
