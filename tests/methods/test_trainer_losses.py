"""The trainer's side of the method interface: the losses `train_step` reports are logged."""

from __future__ import annotations

import pytest

from trainables.trial import Trial


def test_the_trainer_logs_every_loss_a_method_reports_under_its_own_name(make_config):
    """`train/<name>` for each name `train_step` returns, each the mean over the epoch's steps;
    no method-independent `train/adv_loss` any more."""
    trial = Trial(make_config(method="noisy_arl", params={"sigma": 0.5, "lambda": 0.1}))
    reported: list[dict[str, float]] = []
    step = trial.method.train_step

    def recording(*batch):
        reported.append(step(*batch))
        return reported[-1]

    trial.method.train_step = recording
    metrics = trial.train_epoch()
    assert {k for k in metrics if k.startswith("train/")} == {"train/task_loss", "train/proxy_ce"}
    for name in ("task_loss", "proxy_ce"):
        assert metrics[f"train/{name}"] == pytest.approx(sum(r[name] for r in reported) / len(reported))
