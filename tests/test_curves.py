"""`python -m analysis curves --run RUN_ID`: a trial's defense curves from MLflow, its phases
named and its stop marked."""

from __future__ import annotations

import pytest

from analysis.cli import main
from analysis.curves import epoch_series, plot_defense_curves, run_series
from analysis.errors import AnalysisInputError
from trainables.tracking import tracking_client

HISTORY = [
    {"train/task_loss": 0.5 / (e + 1), "train/proxy_loss": 1.0, "val/utility_acc": 0.8 + 0.01 * e,
     "val/proxy_leak_acc": 0.3, "defense/phase": float(e >= 3)}
    for e in range(6)
]


def test_the_figure_names_each_phase_and_marks_the_stop():
    figure = plot_defense_curves(epoch_series(HISTORY), "t", phases=("client", "filter"), converged=0.0)
    signals, losses = figure.axes
    assert {line.get_label() for line in signals.get_lines()} >= {"val/utility_acc", "val/proxy_leak_acc"}
    assert {line.get_label() for line in losses.get_lines()} >= {"train/task_loss", "train/proxy_loss"}
    texts = [t.get_text() for t in signals.texts]
    assert "client" in texts and "filter" in texts and "cap" in texts
    stops = [line for line in signals.get_lines() if list(line.get_xdata()) == [6, 6]]
    assert stops  # the stop at the last epoch


def test_each_halving_of_a_games_learning_rates_is_marked_where_it_happened():
    scales = [1.0, 1.0, 0.5, 0.5, 1.0, 0.25]  # a new phase starts at full rate again: no halving there
    history = [{**metrics, "defense/lr_scale": scale} for metrics, scale in zip(HISTORY, scales, strict=True)]
    signals, _ = plot_defense_curves(epoch_series(history), phases=("client", "filter")).axes
    marks = [line.get_xdata()[0] for line in signals.get_lines() if line.get_linestyle() == ":"]
    assert marks == [2.5, 5.5]
    assert [t.get_text() for t in signals.texts if t.get_text().startswith("lr")] == ["lr x0.5", "lr x0.25"]


@pytest.fixture
def trial_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking_client(uri)
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment, run_name="ρ=0.1")
    client.log_param(run.info.run_id, "method", "disco")
    for epoch, metrics in enumerate(HISTORY, start=1):
        for key, value in metrics.items():
            client.log_metric(run.info.run_id, key, value, step=epoch)
    client.log_metric(run.info.run_id, "train/converged", 1.0, step=6)
    client.log_metric(run.info.run_id, "train/epochs_run", 6.0, step=6)
    client.set_terminated(run.info.run_id)
    return uri, run.info.run_id


def test_curves_of_a_run_from_mlflow(trial_run, tmp_path, capsys):
    uri, run_id = trial_run
    series, info = run_series(uri, run_id)
    assert [value for _, value in series["val/utility_acc"]] == pytest.approx([h["val/utility_acc"] for h in HISTORY])
    assert "train/converged" not in series and info["method"] == "disco"
    assert [phase for _, phase in series["defense/phase"]] == [h["defense/phase"] for h in HISTORY]
    assert main(["curves", "--run", run_id, "--tracking-uri", uri, "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / f"curves-{run_id}.png").stat().st_size > 10_000
    assert f"curves-{run_id}.png" in capsys.readouterr().out


def test_an_unknown_run_is_an_input_error(trial_run, capsys):
    uri, _ = trial_run
    with pytest.raises(AnalysisInputError, match="no such run"):
        run_series(uri, "0" * 32)
    assert main(["curves", "--run", "0" * 32, "--tracking-uri", uri]) == 2
    assert "no such run" in capsys.readouterr().err


def test_attackers_curves_form_a_second_row_with_each_kept_epoch_dotted():
    series = epoch_series(HISTORY)
    series["val/attack/leak/mlp"] = [(1, 0.5), (2, 0.7), (3, 0.65)]
    series["val/attack/recon/mirror"] = [(1, -0.04), (2, -0.02)]  # a decoder's curve is minus its MSE
    figure = plot_defense_curves(series, kept={"leak/mlp": 2.0, "recon/mirror": 2.0})
    signals, _, classifiers, decoders = figure.axes
    assert [line.get_label() for line in classifiers.get_lines()][0] == "leak/mlp"
    [dot] = [line for line in classifiers.get_lines() if line.get_marker() == "o"]
    assert list(dot.get_xdata()) == [2] and list(dot.get_ydata()) == [0.7]
    mirror = decoders.get_lines()[0]
    assert list(mirror.get_ydata()) == [0.04, 0.02] and decoders.get_yscale() == "log"
    assert len(plot_defense_curves(epoch_series(HISTORY)).axes) == 2  # no attack curves: one row


def test_run_series_reads_the_attackers_curves(trial_run):
    uri, run_id = trial_run
    client = tracking_client(uri)
    for epoch, score in enumerate([0.5, 0.6], start=1):
        client.log_metric(run_id, "val/attack/leak/mlp", score, step=epoch)
    series, _ = run_series(uri, run_id)
    assert series["val/attack/leak/mlp"] == [(1, 0.5), (2, 0.6)]
