"""The defense's convergence rule (`trainables/convergence.py`) and how the trainer runs
phases by it: a defense still improving at the cap is flagged (`train/converged` = 0), one
that has plateaued stops early, an oscillation without a trend has converged while a trend
beyond its scatter has not, phases advance on convergence, and a resumed trial continues."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import tiny_config, tiny_raw

from analysis.runs import is_epoch_curve
from sweeps.launcher import check_launchable
from sweeps.spec import load_spec
from trainables.convergence import Plateau
from trainables.data import synthetic
from trainables.trial import Trial


def scripted(monkeypatch, values: list[float]) -> None:
    """Trial.validate returns values[k] as the utility, and 1 - values[k] as the proxy's
    leakage, at the k-th call."""
    calls = iter(values)
    monkeypatch.setattr(Trial, "validate", lambda self: {"val/utility_acc": (v := next(calls)), "val/proxy_leak_acc": 1 - v})


@pytest.fixture(scope="module")
def data():
    return synthetic.load(train_size=64, test_size=32, image_size=16)


def test_a_defense_still_improving_at_the_cap_is_flagged_unconverged(monkeypatch, data):
    scripted(monkeypatch, [0.50 + 0.05 * k for k in range(8)])  # every epoch moves 0.05 > tolerance
    trial = Trial(tiny_config(method="none", params={}, train__epochs=8, train__patience=3), data)
    trial.train()
    metrics = trial.training_metrics()
    assert metrics["train/epochs_run"] == 8 and metrics["train/converged"] == 0


def test_a_plateaued_defense_stops_once_its_last_two_windows_have_no_trend(monkeypatch, data):
    scripted(monkeypatch, [0.5, 0.7, 0.8, 0.805, 0.80, 0.808, 0.80, 0.805] + [0.9] * 10)
    trial = Trial(tiny_config(method="none", params={}, train__epochs=20, train__patience=3, train__tolerance=0.01), data)
    trial.train()
    metrics = trial.training_metrics()
    assert metrics["train/converged"] == 1
    assert metrics["train/epochs_run"] == 7  # epochs 2-7: the rise from 0.7 is one epoch, no trend beyond the scatter
    assert trial.history[-1]["val/utility_acc"] == 0.80  # the last epoch is the one deployed


def test_the_window_holds_train_window_steps_optimiser_steps_where_an_epoch_has_few(monkeypatch, data):
    """One batch an epoch: a window of 2 epochs would be 2 steps, so `window_steps` 3 makes it
    3 epochs and a flat phase runs 6, not 4."""
    stopped_at = {}
    for window_steps in (0, 3):
        scripted(monkeypatch, [0.6] * 20)
        config = tiny_config(method="none", params={}, train__epochs=20, train__patience=2, train__window_steps=window_steps)
        trial = Trial(config, data)
        assert trial.data.train.num_batches(config.train.batch_size) == 1
        trial.train()
        metrics = trial.training_metrics()
        assert metrics["train/converged"] == 1
        stopped_at[window_steps] = (metrics["train/window_epochs"], metrics["train/epochs_run"])
    assert stopped_at == {0: (2, 4), 3: (3, 6)}


def test_a_cap_under_two_windows_is_reported_before_training(data, caplog, write_spec):
    """The trial and the launcher's checks say it when no phase can converge under the cap."""
    config = tiny_config(method="none", params={}, train__epochs=5, train__patience=3)
    with caplog.at_level(logging.WARNING, logger="trainables.trial"):
        Trial(config, data)
    assert "raise train.epochs to 6" in caplog.text and "flagged unconverged" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainables.trial"):
        Trial(tiny_config(method="none", params={}, train__epochs=6, train__patience=3), data)
    assert "train.epochs" not in caplog.text
    spec = load_spec(write_spec(tiny_raw(dataset__train_size=128, train__epochs=30, train__patience=2, train__window_steps=40)))
    with caplog.at_level(logging.WARNING, logger="sweeps.launcher"):
        check_launchable(spec)
    assert "raise train.epochs to 40" in caplog.text  # 115 training images: 2 batches of 64, so a window of 20 epochs


def test_an_oscillating_game_without_a_trend_has_converged():
    swings = [0.3, 0.65, 0.25, 0.6, 0.35, 0.62, 0.28, 0.66, 0.3, 0.6]  # a proxy fooled, then recovering, ...
    plateau = Plateau(window=5, tolerance=0.01)
    assert [plateau.update({"s": v}) for v in swings][-1]


def test_a_trend_counts_only_beyond_its_scatter():
    noisy = Plateau(window=3, tolerance=0.01)
    for k, value in enumerate([0.5, 0.6, 0.45, 0.62, 0.48, 0.6]):  # +0.01 an epoch under 0.07 swings
        noisy.update({"s": value + 0.01 * k})
    assert noisy.converged
    drifting = Plateau(window=3, tolerance=0.01)
    for k in range(12):  # 0.005 an epoch with almost no scatter: 0.015 a window
        drifting.update({"s": 0.5 + 0.005 * k + 0.0005 * (-1) ** k})
        assert not drifting.converged


def test_a_rising_signal_moves_however_noisy_its_epochs():
    plateau = Plateau(window=3, tolerance=0.01)
    for value in [0.30, 0.52, 0.48, 0.70, 0.66, 0.90]:
        plateau.update({"s": value})
    assert not plateau.converged


def test_a_phase_advances_when_it_converges_and_the_method_is_told(monkeypatch, data):
    # DISCO: phase `client` plateaus at once, then `filter` keeps improving to its cap
    scripted(monkeypatch, [0.6] * 4 + [0.3 + 0.1 * k for k in range(5)])
    config = tiny_config(method="disco", params={"optimizer": "adam"}, train__epochs=5, train__patience=2)
    trial = Trial(config, data)
    assert trial.method.phase == "client"
    trial.train()
    metrics = trial.training_metrics()
    assert trial.method.phase == "filter"
    assert metrics["train/epochs_run/client"] == 4 and metrics["train/converged/client"] == 1  # 2 windows of 2
    assert metrics["train/epochs_run/filter"] == 5 and metrics["train/converged/filter"] == 0
    assert metrics["train/epochs_run"] == 9 and metrics["train/converged"] == 0
    assert [h["defense/phase"] for h in trial.history] == [0.0] * 4 + [1.0] * 5


def test_a_resumed_trial_continues_its_phase_rate_and_stale_count(monkeypatch, data, tmp_path):
    values = [0.6] * 4 + [0.3] * 8  # `client` converges at epoch 4, `filter` at 8 (then halves) and 12
    config = tiny_config(method="disco", params={"optimizer": "adam"}, train__epochs=6, train__patience=2, train__anneal=1)
    scripted(monkeypatch, values)
    whole = Trial(config, data)
    whole.train()
    scripted(monkeypatch, values)
    first = Trial(config, data)
    for _ in range(9):  # one epoch into `filter` at half its rates
        first.train_epoch()
    first.save(tmp_path / "state.pt")
    resumed = Trial(config, data)
    resumed.restore(tmp_path / "state.pt")
    assert resumed.method.phase == "filter" and resumed.halvings == 1 and resumed.plateau.history == first.plateau.history
    assert all(group["lr"] == 0.5 * config.train.lr for group in resumed.method.optimizers["filter"].param_groups)
    resumed.train()
    assert resumed.training_metrics() == whole.training_metrics()
    assert resumed.epoch == whole.epoch == 12


def test_a_game_halves_its_rates_on_convergence_until_annealed(monkeypatch, data):
    """A converged game goes on at half its learning rates, `train.anneal` times; a phase that
    is not a game (DISCO's `client`) ends at its first convergence."""
    scripted(monkeypatch, [0.6] * 4 + [0.3] * 12)
    trial = Trial(tiny_config(method="disco", params={"optimizer": "adam"}, train__epochs=6, train__patience=2, train__anneal=2), data)
    trial.train()
    metrics = trial.training_metrics()
    assert metrics["train/epochs_run/client"] == 4 and "train/lr_halvings/client" not in metrics
    assert metrics["train/epochs_run/filter"] == 12 and metrics["train/lr_halvings/filter"] == 2
    assert metrics["train/converged"] == 1
    assert not [key for key in metrics if is_epoch_curve(key)]  # the analysis keeps every one as a column
    assert [h["defense/lr_scale"] for h in trial.history] == [1.0] * 8 + [0.5] * 4 + [0.25] * 4
    assert all(group["lr"] == 0.25 * trial.config.train.lr for group in trial.method.optimizers["filter"].param_groups)


def test_the_trainer_reports_proxy_decoder_ssim_on_validation(data):
    trial = Trial(tiny_config(method="privacy_partitioning", params={}, train__epochs=1), data)
    trial.train()
    assert 0 <= trial.history[0]["val/proxy_ssim"] <= 1 and "val/proxy_leak_acc" not in trial.history[0]


def test_only_a_defense_that_fights_its_proxies_is_watched_by_the_shadow_attacker(data):
    fighting = Trial(tiny_config(method="noisy_arl", train__epochs=1), data)
    fighting.train()
    assert 0 <= fighting.history[0]["val/shadow_leak_acc"] <= 1
    monitored = Trial(tiny_config(method="none", params={}, train__epochs=1), data)
    monitored.train()
    assert monitored.shadow is None and "val/shadow_leak_acc" not in monitored.history[0]


def shadow_accuracy(trial: Trial, release) -> float:
    predictions = torch.cat([trial.shadow.predict(release(x)) for x, _, _ in trial.data.val.batches(64)])
    return (predictions == trial.data.val.private).float().mean().item()


def test_the_shadow_attacker_scores_what_the_release_gives_away_now():
    """Warm-started, it still follows the release: a release that stops carrying the private
    attribute drops its score within an epoch, though it learned the attribute before."""
    trial = Trial(tiny_config(method="noisy_arl"), synthetic.load(train_size=512, test_size=32, image_size=16))
    client = trial.method.client.eval()
    informative = client
    blank = lambda x: torch.zeros_like(client(x))  # noqa: E731
    for epoch in range(1, 6):
        trial.shadow.train_epoch(informative, trial.data.train, 64, epoch)
    learned = shadow_accuracy(trial, informative)
    majority = torch.bincount(trial.data.val.private).max().item() / len(trial.data.val)
    assert learned > majority + 0.2
    trial.shadow.train_epoch(blank, trial.data.train, 64, 6)
    assert shadow_accuracy(trial, blank) <= majority + 0.05
