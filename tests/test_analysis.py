"""analysis/: runs table from a real MLflow sqlite store, fronts vs brute force, hypervolume vs
Optuna, plots, summary, and the `python -m analysis pareto` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient
from optuna._hypervolume import compute_hypervolume

from analysis import (
    AnalysisInputError,
    default_reference,
    hypervolume,
    hypervolumes,
    load_objectives,
    load_runs,
    method_fronts,
    pareto_front,
    pareto_mask,
    parse_objectives,
    read_parquet,
    save_parquet,
    summary_markdown,
)
from analysis.cli import main
from analysis.labels import metric_label
from analysis.objectives import Objective
from analysis.runs import table_tracking_uri
from analysis.synthetic import UNDERTRAINED_TRIAL, front_run_ids, write_synthetic_sweep

REPO = Path(__file__).resolve().parent.parent
OBJ2 = ("utility/acc:max", "privacy/leak_acc:min")
ADV_TRIALS = (
    ("A1", "adv_recon", {"params.lambda1": 0.1, "model.split": 2}, 0.83, 0.66, 0.30, "FINISHED"),
    ("A1", "adv_recon", {"params.lambda1": 1.0, "model.split": 3}, 0.70, 0.35, 0.05, "FINISHED"),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store: the synthetic sweep (2 launches), a second sweep, a sweep that only failed."""
    root = tmp_path_factory.mktemp("mlflow").resolve()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    artifacts = (root / "mlartifacts").as_uri()
    info = write_synthetic_sweep(uri, "synthetic_sweep", artifact_location=f"{artifacts}/1")
    adv = write_synthetic_sweep(uri, "adv_sweep", artifact_location=f"{artifacts}/2", trials=ADV_TRIALS,
                                objectives=["utility/acc:max", "recon/ssim:min"], spec_method="adv_recon")
    failed = write_synthetic_sweep(uri, "failed_sweep", artifact_location=f"{artifacts}/3", trials=(
        ("F1", "noisy_arl", {"params.sigma": 1.0}, None, None, None, "FAILED"),))
    return {"uri": uri, "root": root, "info": info, "adv": adv, "failed": failed}


def test_latest_experiment_is_the_one_launched_last(store, tmp_path):
    from analysis.runs import latest_experiment
    from trainables.tracking import tracking_client

    assert latest_experiment(store["uri"]) == "failed_sweep"  # written last by the fixture
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    tracking_client(empty).create_experiment("no_launch_yet")
    with pytest.raises(AnalysisInputError, match="holds no sweep yet"):
        latest_experiment(empty)


# ---------------------------------------------------------------- load_runs


def test_load_runs_finished_trials_only(store):
    table = load_runs("synthetic_sweep", store["uri"])
    assert table.num_rows == 12
    assert set(table.column("status").to_pylist()) == {"FINISHED"}
    assert set(table.column("method").to_pylist()) == {"none", "noisy_arl", "disco"}
    for column in ("run_id", "run_name", "parent_run_id", "launch", "experiment", "params.sigma", "model.split",
                   "dataset.name", "utility/acc", "privacy/leak_acc", "recon/ssim", "client/gflops"):
        assert column in table.column_names, column
    # the per-epoch curves are not columns; how the defense's training ended is
    assert not any(c.startswith(("train/task_loss", "val/")) for c in table.column_names)
    undertrained = store["info"]["trials"][UNDERTRAINED_TRIAL]["run_id"]
    assert {r["run_id"]: r["train/converged"] for r in table.to_pylist()} == {
        r["run_id"]: float(r["run_id"] != undertrained) for r in store["info"]["trials"] if r["status"] == "FINISHED"}
    assert table.schema.field("params.sigma").type == pa.float64()
    assert table.schema.field("model.split").type == pa.int64()
    assert table.schema.field("dataset.name").type == pa.string()
    parents = set(store["info"]["parents"].values())
    assert set(table.column("parent_run_id").to_pylist()) == parents
    nan_row = [r for r in table.to_pylist() if r["params.sigma"] == 0.1]
    assert len(nan_row) == 1 and np.isnan(nan_row[0]["privacy/leak_acc"])
    assert table_tracking_uri(table) == store["uri"]


def test_load_runs_includes_failed_and_unfinished_on_request(store):
    failed = load_runs("synthetic_sweep", store["uri"], include_failed=True)
    assert failed.num_rows == 13 and "FAILED" in failed.column("status").to_pylist()
    unfinished = load_runs("synthetic_sweep", store["uri"], include_unfinished=True)
    assert unfinished.num_rows == 13 and "RUNNING" in unfinished.column("status").to_pylist()
    both = load_runs("synthetic_sweep", store["uri"], include_failed=True, include_unfinished=True)
    assert both.num_rows == 14
    assert set(both.column("run_id").to_pylist()) == {t["run_id"] for t in store["info"]["trials"]}


def test_load_runs_one_launch(store):
    table = load_runs("synthetic_sweep", store["uri"], launch="L2")
    assert table.num_rows == 2
    assert set(table.column("launch").to_pylist()) == {"L2"}
    assert set(table.column("parent_run_id").to_pylist()) == {store["info"]["parents"]["L2"]}


def test_load_runs_combines_experiments(store):
    table = load_runs(["synthetic_sweep", "adv_sweep"], store["uri"])
    assert table.num_rows == 14
    assert table.column("experiment").to_pylist().count("adv_sweep") == 2
    assert "params.lambda1" in table.column_names and "params.rho" in table.column_names
    fronts = method_fronts(table, OBJ2)
    assert set(fronts) == {"adv_recon", "disco", "none", "noisy_arl"}
    assert fronts["adv_recon"].num_rows == 2
    # (0.70, 0.35) from the other sweep joins the combined front and dominates nothing there but (0.65, 0.45)
    combined = pareto_front(table, OBJ2)
    assert combined.num_rows == 9


def test_a_front_per_threat_model_is_drawn_on_that_threat_models_strongest_attacker(store):
    table = load_runs("synthetic_sweep", store["uri"])
    acc, white_box = table["utility/acc"].to_numpy(), table["recon/ssim:white_box"].to_numpy()
    finite = np.isfinite(acc) & np.isfinite(white_box)
    by_hand = finite & ~np.array([
        finite.any() and any(finite[j] and acc[j] >= acc[i] and white_box[j] <= white_box[i]
                             and (acc[j] > acc[i] or white_box[j] < white_box[i]) for j in range(len(acc)))
        for i in range(len(acc))])
    front = pareto_mask(table, "utility/acc:max recon/ssim:white_box:min")
    assert front.tolist() == by_hand.tolist()
    assert front.tolist() != pareto_mask(table, "utility/acc:max recon/ssim:query:min").tolist()  # another front
    assert metric_label("recon/ssim:white_box") == "Reconstruction SSIM (strongest decoder), white_box attackers only"


def test_parquet_roundtrip(store, tmp_path):
    table = load_runs("synthetic_sweep", store["uri"])
    path = save_parquet(table, tmp_path / "runs" / "table.parquet")
    back = read_parquet(path)
    assert back.schema.equals(table.schema, check_metadata=True)
    pd.testing.assert_frame_equal(back.to_pandas(), table.to_pandas())  # NaN == NaN here, unlike Table.equals
    assert table_tracking_uri(back) == store["uri"]


def test_unknown_experiment_and_missing_store(store, tmp_path):
    with pytest.raises(AnalysisInputError, match="No MLflow experiment named 'nope'.*synthetic_sweep"):
        load_runs("nope", store["uri"])
    missing = tmp_path / "absent" / "mlflow.db"
    with pytest.raises(AnalysisInputError, match="no MLflow store"):
        load_runs("synthetic_sweep", f"sqlite:///{missing}")
    assert not missing.exists()


def test_objectives_from_parent_run_tag(store):
    assert load_objectives("adv_sweep", store["uri"]) == (Objective("utility/acc", "max"), Objective("recon/ssim", "min"))
    assert load_objectives("synthetic_sweep", store["uri"]) == parse_objectives(OBJ2)


def test_parse_objectives_spellings():
    expected = (Objective("utility/acc", "max"), Objective("privacy/leak_acc", "min"))
    assert parse_objectives("utility/acc:max privacy/leak_acc:min") == expected
    assert parse_objectives(json.dumps([{"metric": "utility/acc", "mode": "max"},
                                        {"metric": "privacy/leak_acc", "mode": "min"}])) == expected
    assert parse_objectives([("utility/acc", "max"), {"metric": "privacy/leak_acc", "mode": "min"}]) == expected
    assert parse_objectives(None) == expected
    for bad in (["utility/acc"], ["utility/acc:best"], ["utility/acc:max", "utility/acc:min"], []):
        with pytest.raises(AnalysisInputError):
            parse_objectives(bad)


# ---------------------------------------------------------------- fronts


def test_front_of_the_store(store):
    table = load_runs("synthetic_sweep", store["uri"])
    front = pareto_front(table, OBJ2)
    assert set(front.column("run_id").to_pylist()) == front_run_ids(store["info"])
    assert front.num_rows == 8  # the tie (0.86, 0.62) of noisy_arl and disco: both kept
    assert not any(np.isnan(front.column("privacy/leak_acc").to_numpy()))
    own = method_fronts(table, OBJ2)
    assert {m: t.num_rows for m, t in own.items()} == {"disco": 3, "none": 2, "noisy_arl": 4}
    with pytest.raises(AnalysisInputError, match="'privacy/nope' is not in the runs table"):
        pareto_front(table, ["utility/acc:max", "privacy/nope:min"])


def brute_force_front(values: np.ndarray, maximise: list[bool]) -> np.ndarray:
    """O(n²): row i is on the front iff all objectives finite and no j is >= everywhere, > somewhere."""
    losses = np.where(maximise, -values, values)
    valid = np.all(np.isfinite(losses), axis=1)
    mask = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(valid):
        dominated = any(
            np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i]) for j in np.flatnonzero(valid) if j != i
        )
        mask[i] = not dominated
    return mask


def random_table(seed: int, k: int, n: int = 60) -> tuple[pa.Table, list[str], np.ndarray, list[bool]]:
    rng = np.random.default_rng(seed)
    maximise = [bool(b) for b in rng.integers(0, 2, size=k)]
    # A trade-off (losses near a simplex, so fronts have several points) on a coarse grid (ties).
    losses = rng.dirichlet(np.ones(k), size=n) + 0.25 * rng.random((n, k))
    losses = np.round(losses * 8) / 8
    values = np.where(maximise, 2.0 - losses, losses)
    copies = rng.choice(n, size=n // 6, replace=False)
    values[copies] = values[rng.choice(n, size=len(copies))]  # exact duplicates of other rows
    values[rng.random((n, k)) < 0.08] = np.nan
    names = [f"metric/m{i}" for i in range(k)]
    nulls = rng.random((n, k)) < 0.04  # Arrow nulls as well as NaN
    columns = {name: pa.array(values[:, i], mask=nulls[:, i]) for i, name in enumerate(names)}
    columns["method"] = pa.array(rng.choice(["none", "a", "b"], size=n))
    values[nulls] = np.nan
    objectives = [f"{name}:{'max' if up else 'min'}" for name, up in zip(names, maximise, strict=True)]
    return pa.table(columns), objectives, values, maximise


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(8))
def test_front_equals_brute_force(k, seed):
    table, objectives, values, maximise = random_table(seed, k)
    expected = brute_force_front(values, maximise)
    assert np.array_equal(pareto_mask(table, objectives), expected)
    assert pareto_front(table, objectives).num_rows == expected.sum()
    methods = np.asarray(table.column("method").to_pylist())
    by_method = pareto_mask(table, objectives, by="method")
    for method in set(methods.tolist()):
        rows = methods == method
        assert np.array_equal(by_method[rows], brute_force_front(values[rows], maximise))


def test_front_keeps_identical_points_and_drops_weakly_dominated():
    table = pa.table({"u": [0.9, 0.9, 0.9, 0.5, float("nan")], "l": [0.5, 0.5, 0.6, 0.2, 0.0],
                      "method": ["a", "b", "a", "a", "a"]})
    assert pareto_mask(table, ["u:max", "l:min"]).tolist() == [True, True, False, True, False]
    empty = pa.table({"u": pa.array([], pa.float64()), "l": pa.array([], pa.float64()), "method": pa.array([], pa.string())})
    assert pareto_front(empty, ["u:max", "l:min"]).num_rows == 0
    assert hypervolume(empty, ["u:max", "l:min"]) == 0.0


# ---------------------------------------------------------------- hypervolume


def optuna_hypervolume(values: np.ndarray, maximise: list[bool], reference: np.ndarray) -> float:
    signs = np.where(maximise, -1.0, 1.0)
    losses, ref = values * signs, reference * signs
    losses = losses[np.all(np.isfinite(losses), axis=1)]
    losses = losses[np.all(losses < ref, axis=1)]  # Optuna requires every point to dominate the reference
    return compute_hypervolume(losses, ref) if len(losses) else 0.0


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_hypervolume_equals_optuna(k, seed):
    rng = np.random.default_rng(100 + seed)
    n = 40
    values = rng.random((n, k))
    values[rng.random((n, k)) < 0.05] = np.nan
    maximise = [bool(b) for b in rng.integers(0, 2, size=k)]
    names = [f"metric/m{i}" for i in range(k)]
    table = pa.table({name: values[:, i] for i, name in enumerate(names)} | {"method": ["a"] * n})
    objectives = [f"{name}:{'max' if up else 'min'}" for name, up in zip(names, maximise, strict=True)]
    full = np.array([0.0 if up else 1.0 for up in maximise])
    assert hypervolume(table, objectives, full) == pytest.approx(optuna_hypervolume(values, maximise, full), rel=1e-9)
    # a tighter reference that some points do not dominate: those points contribute nothing
    tight = np.array([0.3 if up else 0.7 for up in maximise])
    assert hypervolume(table, objectives, tight) == pytest.approx(optuna_hypervolume(values, maximise, tight), rel=1e-9)
    assert hypervolume(table, objectives, dict(zip(names, tight, strict=True))) == hypervolume(table, objectives, tight)
    # trade-off points with ties, duplicates, NaN and nulls
    table, objectives, values, maximise = random_table(seed, k)
    reference = np.array([0.0 if up else 2.0 for up in maximise])
    assert hypervolume(table, objectives, reference) == pytest.approx(optuna_hypervolume(values, maximise, reference), rel=1e-9)


def test_default_reference():
    table = pa.table({"utility/acc": [0.9, 0.5], "privacy/leak_acc": [0.8, 0.3], "privacy/delta": [0.1, 0.2],
                      "client/gflops": [0.2, 0.7], "recon/ssim": [0.4, 0.1], "method": ["a", "b"]})
    assert default_reference(table, OBJ2).tolist() == [0.0, 1.0]
    assert default_reference(table, ["privacy/delta:max", "client/gflops:min", "recon/ssim:min"]).tolist() == [-1.0, 0.7, 1.0]
    with_chance = table.append_column("utility/chance", pa.array([0.1, 0.1]))
    assert default_reference(with_chance, OBJ2).tolist() == [0.1, 1.0]
    # the classic pair: area between the staircase and (0, 1)
    assert hypervolume(table, OBJ2) == pytest.approx(0.9 * 0.2 + 0.5 * 0.5)
    assert hypervolumes(table, OBJ2) == {"a": pytest.approx(0.9 * 0.2), "b": pytest.approx(0.5 * 0.7)}
    assert hypervolume(table.to_pandas(), OBJ2) == hypervolume(table, OBJ2)  # pandas works too
    with pytest.raises(AnalysisInputError, match="one finite value per objective"):
        hypervolume(table, OBJ2, [0.0])


def test_per_method_hypervolumes_share_the_reference(store):
    table = load_runs("synthetic_sweep", store["uri"])
    objectives = ["utility/acc:max", "client/gflops:min"]  # data-dependent default reference
    reference = default_reference(table, objectives)
    methods = np.asarray(table.column("method").to_pylist())
    for method, volume in hypervolumes(table, objectives).items():
        assert volume == hypervolume(table.filter(pa.array(methods == method)), objectives, reference)


# ---------------------------------------------------------------- summary and plots


def test_summary_lists_every_method_and_the_combined_front(store):
    table = load_runs("synthetic_sweep", store["uri"])
    text = summary_markdown(table, OBJ2)
    for method in ("none", "noisy_arl", "disco"):
        assert f"| {method} |" in text
    assert "8 on the combined front" in text


def test_plots(store, tmp_path):
    from analysis.gallery import plot_gallery
    from analysis.plots import plot_front, plot_pareto, plot_pareto_3d

    table = load_runs("synthetic_sweep", store["uri"])
    fig = plot_pareto(table, OBJ2)
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    labels = [fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()]
    assert "privacy/leak_acc" in labels[0] and "lower is better" in labels[0]
    assert "utility/acc" in labels[1] and "higher is better" in labels[1]
    fig3 = plot_front(table, ["utility/acc:max", "privacy/leak_acc:min", "recon/ssim:min"])
    assert len(fig3.axes) == 2  # the plot and its colour bar
    fig3.savefig(tmp_path / "p3.png")
    with pytest.raises(ValueError):
        plot_pareto_3d(table, OBJ2)
    gallery = plot_gallery(table, OBJ2)
    assert sum(len(ax.images) for ax in gallery.axes) == 8
    gallery.savefig(tmp_path / "g.png")


def test_a_trials_own_page_rings_its_point_on_the_launch_front(store):
    """front_so_far.png: the launch's trials as `plot_pareto` draws them, with the one trial
    ringed in red at its own (leakage, utility), and a note instead where it has no values."""
    from analysis.plots import plot_trial_on_front

    table = load_runs("synthetic_sweep", store["uri"])
    ids, leak, acc = (table.column(c).to_pylist() for c in ("run_id", "privacy/leak_acc", "utility/acc"))
    for row in (0, len(ids) - 1):
        ax = plot_trial_on_front(table, ids[row], OBJ2).axes[0]
        [ring] = [c for c in ax.collections if list(getattr(c, "get_sizes", list)()) == [650]]
        assert ring.get_offsets().tolist() == [[leak[row], acc[row]]]
        assert "this trial" in [t.get_text() for t in ax.texts]
        assert f"among its launch's {len(ids)} finished trial(s)" in ax.get_title(loc="left")
    absent = plot_trial_on_front(table, "not-a-run", OBJ2).axes[0]
    assert "this trial has no finite objective values" in [t.get_text() for t in absent.texts]


def legend_labels(figure) -> list[str]:
    """The legend's entries: plot_pareto puts its legend below the axes, on the figure."""
    [legend] = figure.legends
    return [text.get_text() for text in legend.get_texts()]


def test_pareto_axes_fit_the_data_and_chance_lines_off_it_are_noted_at_the_edge(store):
    """The task chance (0.5 here) sits far below every utility (0.65-0.95) and the private
    chance (0.3) left of every leakage (0.41-0.95): the axes stay fitted to the data, both
    rates are noted at the edge (not drawn), in different styles, and every combined-front
    point carries its swept values."""
    from analysis.plots import REFERENCE_STYLES, plot_pareto

    table = load_runs("synthetic_sweep", store["uri"])
    table = table.append_column("utility/chance", pa.array([0.5] * table.num_rows, pa.float64()))
    ax = plot_pareto(table, OBJ2).axes[0]
    low, high = ax.get_ylim()
    assert 0.6 < low < 0.65 and 0.95 < high < 1.0
    assert not [line for line in ax.get_lines() if list(line.get_ydata()) == [0.5, 0.5]]  # no chance line drawn
    labels = legend_labels(ax.figure)
    assert "task chance rate: 0.50, off the axes (below)" in labels
    assert "↓ task chance rate 0.50" in [text.get_text() for text in ax.texts]
    assert "private-attribute chance (perfect privacy): 0.30, off the axes (left)" in labels
    assert 0.3 < ax.get_xlim()[0] < 0.41  # not stretched to the chance rate
    task, private = REFERENCE_STYLES["utility/chance"], REFERENCE_STYLES["privacy/leak_chance"]
    assert (task["color"], task["linestyle"]) != (private["color"], private["linestyle"])
    annotations = [text.get_text() for text in ax.texts if "=" in text.get_text()]
    assert len(annotations) == len(front_run_ids(store["info"]))
    assert "λ=0.01 σ=0.5 split=2" in annotations


def test_gallery_reads_row_by_row_most_private_first_and_shows_ssim(store):
    from analysis.gallery import plot_gallery

    table = load_runs("synthetic_sweep", store["uri"])
    gallery = plot_gallery(table, OBJ2)
    panels = [ax for ax in gallery.axes if ax.images]
    positions = [(round(-ax.get_position().y0, 3), round(ax.get_position().x0, 3)) for ax in panels]
    leakages = [float(ax.get_title(loc="left").split("leak=")[1].split()[0]) for ax in panels]
    reading = [leak for _, leak in sorted(zip(positions, leakages, strict=True))]
    assert reading == sorted(leakages)  # in reading order, the most private (least leakage) first
    assert all("SSIM=" in ax.get_title(loc="left") for ax in panels)


def test_interactive_plot(store, tmp_path):
    pytest.importorskip("plotly")
    from analysis.plots import plot_interactive

    table = load_runs("synthetic_sweep", store["uri"])
    figure = plot_interactive(table, OBJ2, tmp_path / "p.html")
    assert {trace.name for trace in figure.data} == {"none", "noisy_arl", "disco"}
    hover = " ".join(text for trace in figure.data for text in trace.hovertext)
    assert "σ=4" in hover and "on the combined front" in hover
    assert (tmp_path / "p.html").stat().st_size > 100_000


# ---------------------------------------------------------------- command line


def pareto_tagged(uri: str, experiment_id: str) -> set[str]:
    runs = MlflowClient(uri).search_runs([experiment_id], "tags.`privsweep.pareto` = 'true'")
    return {r.info.run_id for r in runs}


def test_cli_writes_outputs_logs_and_tags(store, tmp_path, capsys):
    uri, info = store["uri"], store["info"]
    client = MlflowClient(uri)
    stale = next(t["run_id"] for t in info["trials"] if t["run_id"] not in front_run_ids(info) and t["status"] == "FINISHED")
    client.set_tag(stale, "privsweep.pareto", "true")  # from an earlier front: must be removed
    out = tmp_path / "out"
    assert main(["pareto", "--experiment", "synthetic_sweep", "--tracking-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("front.parquet", "front.csv", "pareto.png", "hypervolume.png", "summary.md"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = (out / "summary.md").read_text()
    assert summary in printed
    undertrained = info["trials"][UNDERTRAINED_TRIAL]["run_id"][:12]
    flagged = [line for line in summary.splitlines() if "cap hit: undertrained" in line]
    assert len(flagged) == 1 and undertrained in flagged[0]  # read back from the store, not only from a table
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    per_method = rows[1 : 1 + 3]
    assert [r.split("|")[1].strip() for r in per_method] == ["disco", "noisy_arl", "none"]
    assert set(read_parquet(out / "front.parquet").column("run_id").to_pylist()) == front_run_ids(info)
    assert len((out / "front.csv").read_text().strip().splitlines()) == 1 + 8
    assert pareto_tagged(uri, info["experiment_id"]) == front_run_ids(info)
    for name in ("pareto", "hypervolume", "gallery"):  # every figure in a vector format too
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    volume = hypervolume(load_runs("synthetic_sweep", uri, group=True), OBJ2)
    for parent in info["parents"].values():
        assert {"pareto.png", "pareto.pdf", "hypervolume.png", "front.csv", "summary.md"} <= {a.path for a in client.list_artifacts(parent)}
        numbers = client.get_run(parent).data.metrics
        assert numbers["front/size"] == 8 and numbers["front/trials"] == 12  # every finished trial, the one without a finite objective too
        assert numbers["front/hypervolume"] == pytest.approx(volume)
        assert numbers["front/hypervolume:ci95_lo"] < volume < numbers["front/hypervolume:ci95_hi"]


def test_hypervolume_interval_widens_with_the_trials_noise():
    from analysis.intervals import hypervolume_interval

    def table(width: float) -> pa.Table:
        acc, leak = [0.9, 0.8, 0.7], [0.8, 0.6, 0.5]
        return pa.table({"method": ["a"] * 3, "utility/acc": acc, "privacy/leak_acc": leak,
                         "utility/acc:ci95_lo": [v - width for v in acc], "utility/acc:ci95_hi": [v + width for v in acc],
                         "privacy/leak_acc:ci95_lo": [v - width for v in leak], "privacy/leak_acc:ci95_hi": [v + width for v in leak]})

    narrow, wide = (hypervolume_interval(table(w), OBJ2, [0.0, 1.0]) for w in (0.01, 0.05))
    assert narrow[0] == wide[0] == pytest.approx(hypervolume(table(0.01), OBJ2, [0.0, 1.0]))
    assert narrow[1] < narrow[0] < narrow[2] and wide[1] < narrow[1] and narrow[2] < wide[2]
    unknown = table(0.01).drop_columns(["utility/acc:ci95_lo", "utility/acc:ci95_hi"])
    volume, low, high = hypervolume_interval(unknown, OBJ2, [0.0, 1.0])
    assert volume == pytest.approx(narrow[0]) and np.isnan(low) and np.isnan(high)


def test_summary_says_how_much_of_the_planned_launches_finished(tmp_path, capsys):
    """A launch records the runs it planned; summary.md counts the finished ones and names
    a launch that stopped short with the command that continues it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    info = write_synthetic_sweep(uri, "planned_sweep")
    client = MlflowClient(uri)
    client.set_tag(info["parents"]["L1"], "privsweep.planned_runs", "11")  # 10 finished, 1 failed
    client.set_tag(info["parents"]["L2"], "privsweep.planned_runs", "4")  # 2 finished, 1 running, 1 never started
    client.set_terminated(info["parents"]["L2"], "KILLED")
    out = tmp_path / "out"
    assert main(["pareto", "--experiment", "planned_sweep", "--tracking-uri", uri, "--out", str(out), "--no-mlflow"]) == 0
    summary = (out / "summary.md").read_text()
    assert "12 of 15 planned runs finished." in summary
    assert "launch `L2` (sweep) is KILLED: 2 of 4 planned runs finished; continue it with " \
           "`python -m sweeps run SPEC --resume`." in summary
    assert "`L1` (sweep)" not in summary  # it finished; its failed trial is failed, not unfinished
    capsys.readouterr()


def test_cli_objectives_and_launch(store, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["pareto", "--experiment", "synthetic_sweep", "--tracking-uri", store["uri"], "--out", str(out), "--no-mlflow"]
    assert main(args + ["--objectives", "utility/acc:max", "privacy/leak_acc:min", "recon/ssim:min"]) == 0
    assert "`recon/ssim` (min)" in (out / "summary.md").read_text()
    assert main(args + ["--launch", "L2"]) == 0
    assert read_parquet(out / "front.parquet").num_rows == 2
    # the sweep's own objectives (parent run tag) are the default
    assert main(["pareto", "--experiment", "adv_sweep", "--tracking-uri", store["uri"], "--out", str(out), "--no-mlflow"]) == 0
    assert "`recon/ssim` (min)" in (out / "summary.md").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--experiment", "nope"], "No MLflow experiment named 'nope'"),
    (["--experiment", "failed_sweep"], "no finished trials"),
    (["--experiment", "synthetic_sweep", "--objectives", "utility/acc:max", "privacy/nope:min"], "'privacy/nope' is not in the runs table"),
    (["--experiment", "synthetic_sweep", "--objectives", "utility/acc"], "has no mode"),
    (["--experiment", "synthetic_sweep", "--reference", "0.5"], "one finite value per objective"),
])
def test_cli_bad_input_exits_2(store, tmp_path, capsys, extra, message):
    assert main(["pareto", "--tracking-uri", store["uri"], "--out", str(tmp_path / "bad"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_module_entry_point_bad_input(store, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "pareto", "--experiment", "nope", "--tracking-uri", str(store["uri"])],
        cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "No MLflow experiment named 'nope'" in result.stderr and "Traceback" not in result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "analysis", "pareto", "--experiment", "x", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"],
        cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2 and "no MLflow store" in missing.stderr


# ---------------------------------------------------------------- attack strength in the summary and plot


def strength_table() -> pa.Table:
    """Three trials: `a` converged, `b`'s strongest leakage attacker (mlp) hit the cap while
    its unconverged server_arch attacker is weaker (so `c`, whose weaker attacker is the
    unconverged one, is not flagged), a proxy number for `a` and `b` only, and `c`'s defense
    stopped at its epoch cap."""
    rows = {
        "run_id": ["a" * 32, "b" * 32, "c" * 32], "run_name": ["a", "b", "c"], "method": ["noisy_arl"] * 3,
        "experiment": ["x"] * 3, "status": ["FINISHED"] * 3,
        "utility/acc": [0.95, 0.90, 0.80], "privacy/leak_acc": [0.70, 0.50, 0.40],
        "privacy/leak_acc/mlp": [0.70, 0.50, 0.40], "privacy/leak_acc/server_arch": [0.60, 0.45, 0.30],
        "attack/converged/leak/mlp": [1.0, 0.0, 1.0], "attack/converged/leak/server_arch": [1.0, 0.0, 0.0],
        "privacy/proxy_leak_acc": [0.30, 0.20, None], "privacy/leak_floor": [0.2, 0.2, 0.2],
        "train/converged": [1.0, 1.0, 0.0],
    }
    return pa.table(rows)


def test_unconverged_flags_only_trials_whose_strongest_attacker_hit_the_cap():
    from analysis.strength import above_floor, unconverged

    table = strength_table()
    assert unconverged(table, "privacy/leak_acc").tolist() == [False, True, False]
    assert unconverged(table, "utility/acc").tolist() == [False, False, False]
    assert above_floor(table) == pytest.approx([0.5, 0.3, 0.2])


def test_an_undertrained_defense_is_flagged_in_the_summary_and_on_the_plot():
    from analysis.plots import plot_pareto
    from analysis.report import summary_markdown
    from analysis.strength import defense_unconverged

    table = strength_table()
    assert defense_unconverged(table).tolist() == [False, False, True]
    text = summary_markdown(table, OBJ2)
    row_c = next(line for line in text.split("## Combined front")[1].splitlines() if "cccccccccccc" in line)
    assert "cap hit: undertrained" in row_c
    assert "1 front point(s) come from a defense that hit `train.epochs`" in text
    labels = legend_labels(plot_pareto(table, OBJ2))
    assert any("defense at its epoch cap: undertrained" in label and "(1)" in label for label in labels)
    old = table.drop(["train/converged"])  # runs from before the metric: nothing flagged, no column
    assert not defense_unconverged(old).any() and "undertrained" not in summary_markdown(old, OBJ2)


def test_summary_puts_proxy_beside_fresh_and_marks_lower_bounds():
    from analysis.report import summary_markdown

    text = summary_markdown(strength_table(), OBJ2)
    front = text.split("## Combined front")[1].splitlines()
    header = next(line for line in front if line.startswith("| method | utility/acc"))
    assert "privacy/proxy_leak_acc (own adversary)" in header and "leak above floor" in header and "attackers" in header
    row_b = next(line for line in front if "bbbbbbbbbbbb" in line)
    assert "0.200" in row_b and "0.300" in row_b and "cap hit: lower bound" in row_b
    row_a = next(line for line in front if "aaaaaaaaaaaa" in line)
    assert "| converged |" in row_a
    assert "1 front point(s) have a strongest attacker that hit" in text
    assert "leakage floor" in text


def test_plot_draws_the_floor_the_caps_and_the_proxies():
    from analysis.plots import plot_pareto

    fig = plot_pareto(strength_table(), OBJ2)
    ax = fig.axes[0]
    labels = legend_labels(fig)
    assert any(label.startswith("leakage floor") and "0.20" in label for label in labels)
    assert any("attacker at its epoch cap: a lower bound" in label and "(1)" in label for label in labels)
    assert any("own adversary" in label for label in labels)
    floor_lines = [line for line in ax.get_lines() if line.get_linestyle() == "--" and list(line.get_xdata()) == [0.2, 0.2]]
    assert floor_lines


# ---------------------------------------------------------------- intervals in the summary and plot


def interval_table(rows: list[tuple[str, str, float, float, float, float]]) -> pa.Table:
    """Trials (run, method, utility, utility half-width, leakage, leakage half-width)."""
    columns: dict[str, list] = {name: [] for name in ("run_id", "run_name", "method", "experiment", "status")}
    for name in ("utility/acc", "privacy/leak_acc"):
        columns.update({name: [], f"{name}:ci95_lo": [], f"{name}:ci95_hi": []})
    for run, method, acc, acc_half, leak, leak_half in rows:
        columns["run_id"].append(run * 32)
        columns["run_name"].append(run)
        columns["method"].append(method)
        columns["experiment"].append("x")
        columns["status"].append("FINISHED")
        for name, value, half in (("utility/acc", acc, acc_half), ("privacy/leak_acc", leak, leak_half)):
            columns[name].append(value)
            columns[f"{name}:ci95_lo"].append(value - half)
            columns[f"{name}:ci95_hi"].append(value + half)
    return pa.table(columns)


def test_a_front_point_is_tied_when_another_could_dominate_it_within_the_intervals():
    """a and b are both on the front, but their intervals overlap on both objectives: each
    could dominate the other. c is far from both: clear. d is dominated by a beyond noise
    on leakage but could still dominate nobody; a is the one that could dominate d."""
    from analysis.intervals import statistically_tied

    table = interval_table([
        ("a", "m", 0.90, 0.01, 0.50, 0.01),
        ("b", "m", 0.89, 0.02, 0.49, 0.02),
        ("c", "m", 0.70, 0.01, 0.20, 0.01),
        ("d", "m", 0.80, 0.01, 0.60, 0.01),
    ])
    tied = statistically_tied(table, OBJ2)
    assert tied[0] == 1 and tied[1] == 0
    assert tied[2] is None
    assert tied[3] in (0, 1)
    narrow = interval_table([("a", "m", 0.90, 0.001, 0.50, 0.001), ("b", "m", 0.89, 0.001, 0.49, 0.001)])
    assert statistically_tied(narrow, OBJ2) == [None, None]
    no_intervals = table.drop_columns([n for n in table.column_names if ":ci95" in n])
    assert statistically_tied(no_intervals, OBJ2) == [None] * 4
    exact_leakage = table.drop_columns(["privacy/leak_acc:ci95_lo", "privacy/leak_acc:ci95_hi"])
    tied = statistically_tied(exact_leakage, OBJ2)  # leakage exact: b (.49) could still beat a (.50), never a b
    assert tied[0] == 1 and tied[1] is None


def test_hypervolume_differences_are_judged_against_the_intervals():
    """Methods p and q have the same front up to 0.005 with intervals of ±0.02: tied. r's
    front is far better than p's: they differ. Without intervals there is no verdict."""
    from analysis.intervals import hypervolume_differences

    table = interval_table([
        ("a", "p", 0.90, 0.02, 0.50, 0.02), ("b", "p", 0.80, 0.02, 0.30, 0.02),
        ("c", "q", 0.905, 0.02, 0.50, 0.02), ("d", "q", 0.80, 0.02, 0.295, 0.02),
        ("e", "r", 0.97, 0.02, 0.25, 0.02),
    ])
    pairs = {(pair["a"], pair["b"]): pair for pair in hypervolume_differences(table, OBJ2, reference=[0.5, 1.0])}
    assert pairs[("p", "q")]["differ"] is False and pairs[("p", "q")]["low"] < 0 < pairs[("p", "q")]["high"]
    assert pairs[("p", "r")]["differ"] is True and pairs[("p", "r")]["high"] < 0
    assert pairs[("p", "r")]["difference"] == pytest.approx(
        (0.40 * 0.50 + 0.30 * 0.20) - 0.47 * 0.75, abs=1e-9)  # two boxes against one, reference (0.5, 1.0)
    no_intervals = table.drop_columns([n for n in table.column_names if ":ci95" in n])
    assert all(pair["differ"] is None for pair in hypervolume_differences(no_intervals, OBJ2, reference=[0.5, 1.0]))


def test_summary_and_plot_show_the_intervals(store):
    from analysis.plots import plot_pareto
    from analysis.report import summary_markdown

    table = load_runs("synthetic_sweep", tracking_uri=store["uri"])
    text = summary_markdown(table, OBJ2)
    front = text.split("## Combined front")[1]
    header = next(line for line in front.splitlines() if line.startswith("| method |"))
    assert "within intervals" in header
    assert "0.9000 [0.8869, 0.9131]" in front  # utility 0.90 ± 1.96·sqrt(0.09/2000)
    assert "statistically tied" in text and "## Hypervolume differences between methods" in text
    assert "| disco | noisy_arl |" in text
    ax = plot_pareto(table, OBJ2).axes[0]
    labels = legend_labels(ax.figure)
    assert any(label.startswith("95 % interval") and "bootstrap" in label for label in labels)
    segments = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert sum(len(c.get_segments()) for c in segments) == 2 * sum(np.isfinite(np.asarray(table.column("privacy/leak_acc").to_pylist(), dtype=float)))


# ---------------------------------------------------------------- seed replicates


def replicate_table() -> pa.Table:
    """Configuration A: three seeds (utility .80/.82/.84, leakage .50/.60/.40, test intervals
    ±.01); B: one seed; a run from before replicates (no config id)."""
    rows = [
        ("r1", "A", "0", 0.80, 0.50), ("r2", "A", "1", 0.82, 0.60), ("r3", "A", "2", 0.84, 0.40),
        ("r4", "B", "0", 0.90, 0.70), ("r5", None, None, 0.60, 0.30),
    ]
    columns: dict[str, list] = {"run_id": [], "run_name": [], "method": [], "experiment": [], "status": [],
                                "config_id": [], "replicate": [], "train.seed": []}
    for name in ("utility/acc", "privacy/leak_acc"):
        columns.update({name: [], f"{name}:ci95_lo": [], f"{name}:ci95_hi": []})
    for run, config, replicate, acc, leak in rows:
        for key, value in (("run_id", run), ("run_name", run), ("method", "m"), ("experiment", "x"), ("status", "FINISHED"),
                           ("config_id", config), ("replicate", replicate), ("train.seed", int(replicate or 0))):
            columns[key].append(value)
        for name, value in (("utility/acc", acc), ("privacy/leak_acc", leak)):
            columns[name].append(value)
            columns[f"{name}:ci95_lo"].append(value - 0.01)
            columns[f"{name}:ci95_hi"].append(value + 0.01)
    return pa.table(columns)


def test_group_replicates_gives_the_mean_and_the_interval_of_the_mean():
    from scipy import stats

    from analysis.replicates import group_replicates

    grouped = group_replicates(replicate_table())
    rows = {row["config_id"] or row["run_id"]: row for row in grouped.to_pylist()}
    assert set(rows) == {"A", "B", "r5"}
    a = rows["A"]
    assert a["seeds"] == 3 and a["run_ids"] == "r1,r2,r3" and a["run_id"] == "r1"
    assert a["utility/acc"] == pytest.approx(0.82) and a["privacy/leak_acc"] == pytest.approx(0.50)
    assert a["privacy/leak_acc:seed_sd"] == pytest.approx(0.1)
    half = ((stats.t.ppf(0.975, 2) * 0.1 / 3**0.5) ** 2 + 0.01**2) ** 0.5  # seed noise and the shared test noise
    assert a["privacy/leak_acc:ci95_lo"] == pytest.approx(0.50 - half)
    assert a["privacy/leak_acc:ci95_hi"] == pytest.approx(0.50 + half)
    b = rows["B"]
    assert b["seeds"] == 1 and b["privacy/leak_acc:ci95_lo"] == pytest.approx(0.69)  # its own bootstrap interval
    assert b["privacy/leak_acc:seed_sd"] is None or np.isnan(b["privacy/leak_acc:seed_sd"])
    assert rows["r5"]["seeds"] == 1
    again = replicate_table().to_pylist()
    again.append({**again[0], "run_id": "r9", "utility/acc": 0.86})  # seed 0 of A launched again
    a = next(row for row in group_replicates(pa.Table.from_pylist(again)).to_pylist() if row["config_id"] == "A")
    assert a["seeds"] == 3 and a["run_ids"] == "r2,r3,r9" and a["utility/acc"] == pytest.approx(0.84)


def test_confirmation_table_says_which_single_seed_front_points_survive():
    """Seed 0 of A (.80, .50) is on the single-seed front with B and the untagged run; A's
    mean (.82, .50) is dominated by nobody, B (.90, .70) and r5 (.60, .30) neither: all
    three survive. Making A's other seeds worse sinks it below C, which then dominates."""
    from analysis.replicates import confirmation_table

    text, survivors, total = confirmation_table(replicate_table(), OBJ2)
    assert (survivors, total) == (3, 3)
    assert "3 of 3 single-seed front configuration(s) stay" in text
    row_a = next(line for line in text.splitlines() if "| 0.8000 | 0.8200 [" in line)
    assert row_a.rstrip().endswith("| 3 | yes |")
    worse = replicate_table().to_pylist()
    for row in worse:
        if row["run_id"] in ("r2", "r3"):
            row["utility/acc"], row["privacy/leak_acc"] = 0.70, 0.80
    worse.append({**worse[3], "run_id": "r6", "config_id": "C", "utility/acc": 0.79, "privacy/leak_acc": 0.55})
    text, survivors, total = confirmation_table(pa.Table.from_pylist(worse), OBJ2)
    assert total == 3 and survivors == 2  # A's seed 0 was lucky: its mean (.733, .70) is dominated by C
    assert "| 0.8000 | 0.7333 [" in text and "| 3 | no |" in text


def test_a_configuration_is_a_lower_bound_when_any_seed_hit_the_cap():
    """Seed means: one of three seeds' strongest attacker hit the cap (converged mean 2/3)."""
    from analysis.replicates import group_replicates
    from analysis.strength import unconverged

    rows = [{"run_id": f"r{i}", "run_name": "r", "method": "m", "experiment": "x", "status": "FINISHED",
             "config_id": "A", "replicate": str(i), "utility/acc": 0.9, "privacy/leak_acc": 0.6,
             "privacy/leak_acc/mlp": 0.6, "attack/converged/leak/mlp": float(i != 2)} for i in range(3)]
    grouped = group_replicates(pa.Table.from_pylist(rows))
    assert grouped.column("attack/converged/leak/mlp").to_pylist() == [pytest.approx(2 / 3)]
    assert unconverged(grouped, "privacy/leak_acc").tolist() == [True]


# ---------------------------------------------------------------- same-budget controls

DISCO_CONTROL = json.dumps({"method": "random_pruning", "shared": ["params.pruning_ratio"]})


def control_table() -> pa.Table:
    """DISCO at R .4 split 2 (leak .70 ±.01, SSIM .50 ±.05), its control at the same R and
    split (leak .80 ±.01, SSIM .52 ±.05), a random_pruning run at another split, and DISCO
    at R .6 with no control run."""
    rows = [
        ("d1", "disco", DISCO_CONTROL, 0.4, 1.0, 2, 0.90, 0.70, 0.50),
        ("c1", "random_pruning", None, 0.4, None, 2, 0.91, 0.80, 0.52),
        ("c2", "random_pruning", None, 0.4, None, 3, 0.92, 0.60, 0.40),
        ("d2", "disco", DISCO_CONTROL, 0.6, 1.0, 2, 0.85, 0.65, 0.45),
    ]
    records = []
    for run, method, control, ratio, rho, split, acc, leak, ssim in rows:
        record = {"run_id": run, "run_name": run, "method": method, "experiment": "x", "status": "FINISHED", "control": control,
                  "params.pruning_ratio": ratio, "params.rho": rho, "model.split": split, "train.seed": 0}
        for name, value, half in (("utility/acc", acc, 0.01), ("privacy/leak_acc", leak, 0.01), ("recon/ssim", ssim, 0.05)):
            record.update({name: value, f"{name}:ci95_lo": value - half, f"{name}:ci95_hi": value + half})
        records.append(record)
    return pa.Table.from_pylist(records)


def test_each_method_row_is_paired_with_its_control_at_the_same_shared_params_and_split():
    from analysis.controls import control_pairs

    pairs = control_pairs(control_table())
    assert [(p["row"], p["control_row"], p["control"]) for p in pairs] == [(0, 1, "random_pruning"), (3, None, "random_pruning")]


def test_summary_puts_each_method_beside_its_control_with_a_verdict_by_the_intervals():
    from analysis.report import summary_markdown

    text = summary_markdown(control_table(), ["utility/acc:max", "privacy/leak_acc:min"])
    section = text.split("## Same-budget controls", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| disco vs random_pruning"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "0.900 [0.890, 0.910] / 0.910 [0.900, 0.920]"
    assert cells[3] == "0.700 [0.690, 0.710] / 0.800 [0.790, 0.810]"
    assert cells[-2:] == ["disco", "tied"]  # leakage: disjoint intervals; SSIM: .50 ±.05 against .52 ±.05
    assert "1 configuration(s) have no run of their control" in section and "R=0.6" in section
    assert "python -m sweeps confirm SPEC --controls" in section
    assert "Same-budget controls" not in summary_markdown(replicate_table(), ["utility/acc:max", "privacy/leak_acc:min"])



# ---------------------------------------------------------------- hypervolume over trials


def test_hypervolume_curves_are_each_prefix_of_trials_hypervolume_combined_and_per_method():
    from analysis.pareto import hypervolume, hypervolume_curves

    table = control_table()  # four trials of two methods, in start order
    objectives = ["utility/acc:max", "privacy/leak_acc:min"]
    reference = [0.0, 1.0]
    curves = hypervolume_curves(table, objectives, reference)
    assert set(curves) == {"all", "disco", "random_pruning"}
    methods = table.column("method").to_pylist()
    for n in range(1, table.num_rows + 1):
        prefix = table.slice(0, n)
        assert curves["all"][n - 1] == pytest.approx(hypervolume(prefix, objectives, reference))
        for method in ("disco", "random_pruning"):
            rows = pa.array([m == method for m in methods[:n]])
            assert curves[method][n - 1] == pytest.approx(hypervolume(prefix.filter(rows), objectives, reference))
    assert np.all(np.diff(curves["all"]) >= 0) and curves["all"][-1] > curves["all"][0]
    assert curves["disco"][1] == curves["disco"][0]  # trial 2 is random_pruning's: disco's front is unchanged
    # (.90, .70) then (.91, .80): the second adds only the strip above .90
    assert curves["all"][1] == pytest.approx(0.90 * 0.30 + 0.01 * 0.20)
