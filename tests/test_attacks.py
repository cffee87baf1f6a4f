"""The attack protocol is honest (docs/design.md, "Evaluation protocol"), and the summary metrics
are the documented aggregates of the per-attacker ones.

A spy wraps the real `noisy_arl` method and records every `release` call: which split the
images come from (train and test images carry different marker pixels), in which phase
(defense training, attacker training, attacker selection on the validation split, attacker
evaluation), with or without autograd, and the z handed out."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import tiny_config

import trainables.attacks.suite as suite
import trainables.attacks.training as training
import trainables.trial as trial_module
from trainables.attacks.attackers.decoders import FullyConnected, Mirror
from trainables.attacks.attackers.leakage import LEAKAGE_EMA, LEAKAGE_STOPPING_SCALE, PooledMLP
from trainables.attacks.base import AttackContext
from trainables.attacks.releases import ReleasedSplit
from trainables.bootstrap import Mean, point_values
from trainables.config import AttackConfig
from trainables.data import synthetic
from trainables.data.base import Dataset, Split
from trainables.data.batches import TensorSplit
from trainables.methods import METHODS
from trainables.methods.base import Method
from trainables.methods.noisy_arl import NoisyARL
from trainables.models.decoders import MirrorDecoder
from trainables.trial import Trial

recalibrate = trial_module.recalibrate_batch_norm

SIGMA = 0.5
TRAIN, TEST = "train", "test"


def mark(split: Split, which: str) -> Split:
    """Pixel (0, 0) of channel 0 is 255 on train images and 0 on test images; pixel (0, 1)
    the other way round. Nothing else in a synthetic image is exactly both."""
    images = split.images.copy()
    images[:, 0, 0, 0], images[:, 0, 0, 1] = (255, 0) if which == TRAIN else (0, 255)
    return Split(images, dict(split.attributes))


def marks(x: torch.Tensor) -> set[str]:
    a, b = x[:, 0, 0, 0], x[:, 0, 0, 1]
    found = set()
    if ((a == 1) & (b == 0)).any():
        found.add(TRAIN)
    if ((a == 0) & (b == 1)).any():
        found.add(TEST)
    if (~(((a == 1) & (b == 0)) | ((a == 0) & (b == 1)))).any():
        found.add("unmarked")
    return found


@dataclass(eq=False)
class Release:
    phase: str
    marks: set[str]
    grad: bool
    method_training: bool
    x: torch.Tensor
    z: torch.Tensor


class Recorder:
    def __init__(self):
        self.phase = "defense"
        self.releases: list[Release] = []
        self.losses: list[tuple[str, set[str], bool, bool]] = []  # (target, image marks, grad, net.training)

    def in_phase(self, phase: str) -> list[Release]:
        return [r for r in self.releases if r.phase == phase]


@pytest.fixture(scope="module")
def spied_trial():
    """A 1-epoch noisy_arl trial on marked synthetic data, attacked for 2 epochs, spied on."""
    recorder = Recorder()

    class SpyNoisyARL(NoisyARL):
        def release(self, x):
            z = super().release(x)
            recorder.releases.append(
                Release(recorder.phase, marks(x), torch.is_grad_enabled(), self.training, x.detach().clone(), z.detach().clone())
            )
            return z

        def release_parts(self):
            # the protocol's default for a random release (the images stored, `release` per
            # batch), so that every release the attackers see passes the spy with its images
            return Method.release_parts(self)

    def phase(name, function):
        def wrapped(*args, **kwargs):
            previous, recorder.phase = recorder.phase, name
            try:
                return function(*args, **kwargs)
            finally:
                recorder.phase = previous if name != "attack_eval" else "after_eval"

        return wrapped

    original_loss = training.Attacker.loss

    def spy_loss(self, z, targets):
        recorder.losses.append((self.target, marks(targets["image"]), torch.is_grad_enabled(), self.net.training))
        return original_loss(self, z, targets)

    base = synthetic.load(train_size=256, test_size=128, image_size=16, seed=3)
    dataset = Dataset("synthetic", mark(base.train, TRAIN), mark(base.test, TEST), base.num_classes)
    config = tiny_config(params={"sigma": SIGMA, "lambda": 0.1}, attacks__epochs=2)

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(METHODS, "noisy_arl", SpyNoisyARL)
        mp.setattr(suite, "train_attackers", phase("attack_train", suite.train_attackers))
        mp.setattr(training, "selection_scores", phase("attack_select", training.selection_scores))
        mp.setattr(suite, "evaluate", phase("attack_eval", suite.evaluate))
        mp.setattr(suite, "DrawnOnce", phase("attack_eval", suite.DrawnOnce))  # where the test split is released
        mp.setattr(training.Attacker, "loss", spy_loss)
        trial = Trial(config, dataset)
        mp.setattr(trial, "validate", phase("validate", trial.validate))
        mp.setattr(trial.shadow, "train_epoch", phase("shadow", trial.shadow.train_epoch))
        assert isinstance(trial.method, SpyNoisyARL)
        trial.train_epoch()
        recorder.phase = "defense_done"
        trained_state = {k: v.clone() for k, v in trial.method.state_dict().items()}
        deployed_state: dict[str, torch.Tensor] = {}

        def recalibrate_then_snapshot(method, *args, **kwargs):
            count = recalibrate(method, *args, **kwargs)
            deployed_state.update({k: v.clone() for k, v in method.state_dict().items()})
            return count

        mp.setattr(trial_module, "recalibrate_batch_norm", recalibrate_then_snapshot)
        metrics, report = trial.attack()
    return trial, recorder, metrics, (trained_state, deployed_state)


def test_defense_trains_on_the_train_split_only(spied_trial):
    trial, recorder, _, _ = spied_trial
    defense = recorder.in_phase("defense")
    assert defense, "no release during defense training"
    assert all(r.marks == {TRAIN} and r.grad and r.method_training for r in defense)
    assert sum(len(r.x) for r in defense) == len(trial.data.train)
    validation = recorder.in_phase("validate")
    assert validation and all(r.marks == {TRAIN} and not r.grad for r in validation)  # val is held out of train
    # the shadow attacker (a game's convergence signal) sees the train split's releases once an
    # epoch, with no gradient into the defense and the client in eval mode
    shadow = recorder.in_phase("shadow")
    assert all(r.marks == {TRAIN} and not r.grad and not r.method_training for r in shadow)
    assert sum(len(r.x) for r in shadow) == len(trial.data.train)


def test_attackers_train_only_on_attacker_split_releases(spied_trial):
    trial, recorder, metrics, _ = spied_trial
    train_phase = recorder.in_phase("attack_train")
    assert train_phase
    assert all(r.marks == {TRAIN} for r in train_phase)
    assert all(not r.method_training for r in train_phase)  # the defense is frozen
    # every attacker-split image released once per epoch of the longest-training attacker
    epochs = max(value for key, value in metrics.items() if key.startswith("attack/epochs_run/"))
    assert epochs > trial.config.attacks.epochs  # the leakage classifiers' cap is twice the suite's
    assert sum(len(r.x) for r in train_phase) == epochs * len(trial.data.train)
    # every loss any attacker optimises is on train images, with autograd, in train mode
    assert recorder.losses
    assert all(image_marks == {TRAIN} and grad and training for _, image_marks, grad, training in recorder.losses)
    assert {target for target, *_ in recorder.losses} == {"private", "image", "task"}


def test_attackers_are_selected_on_validation_releases_only(spied_trial):
    trial, recorder, metrics, _ = spied_trial
    selection = recorder.in_phase("attack_select")
    assert all(r.marks == {TRAIN} and not r.grad and not r.method_training for r in selection)
    # the validation split, released once after every epoch of the longest-training attacker
    runs = {k.removeprefix("attack/epochs_run/"): v for k, v in metrics.items() if k.startswith("attack/epochs_run/")}
    assert sum(len(r.x) for r in selection) == max(runs.values()) * len(trial.data.val)
    val_images = {x.numpy().tobytes() for x in trial.data.val.images}
    assert all(x.mul(255).round().to(torch.uint8).numpy().tobytes() in val_images for r in selection for x in r.x)
    kept = {k.removeprefix("attack/kept_epoch/"): v for k, v in metrics.items() if k.startswith("attack/kept_epoch/")}
    assert set(kept) == {"leak/server_arch", "leak/mlp", "recon/mirror", "recon/fc", "utility/retrained"}
    assert all(1 <= kept[name] <= runs[name] for name in kept)


def test_test_split_is_only_used_under_no_grad_evaluation(spied_trial):
    trial, recorder, _, _ = spied_trial
    evaluation = recorder.in_phase("attack_eval")
    assert evaluation
    assert all(r.marks == {TEST} and not r.grad and not r.method_training for r in evaluation)
    assert sum(len(r.x) for r in evaluation) == len(trial.data.test)  # released once: every attacker sees that draw
    with_test_images = [r for r in recorder.releases if TEST in r.marks]
    assert with_test_images
    assert all(r.phase in ("attack_eval", "after_eval") and not r.grad for r in with_test_images)
    # afterwards: the gallery (test images) and the FLOP count's probe (one random input)
    after = recorder.in_phase("after_eval")
    gallery = [r for r in after if r.marks == {TEST}]
    assert [len(r.x) for r in gallery] == [trial.config.attacks.gallery]
    others = [r for r in after if r.marks != {TEST}]
    assert len(others) == 1 and others[0].marks == {"unmarked"} and len(others[0].x) == 1


def test_attack_leaves_the_frozen_defense_unchanged(spied_trial):
    trial, _, _, (trained_state, deployed_state) = spied_trial
    assert deployed_state, "batch-norm statistics were not recomputed before the attack"
    for key, value in trial.method.state_dict().items():
        assert torch.equal(value, deployed_state[key]), key  # the attack suite changes nothing
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, trained_state[key]), key  # recalibration moves no weight
    assert not any(p.requires_grad for p in trial.method.parameters())


def test_defense_noise_is_redrawn_at_attack_time(spied_trial):
    trial, recorder, metrics, _ = spied_trial
    client = trial.method.client.eval()
    attack_releases = recorder.in_phase("attack_train") + recorder.in_phase("attack_eval")
    for r in attack_releases:
        with torch.no_grad():
            clean = client(r.x)
        assert (r.z - clean).std().item() == pytest.approx(SIGMA, rel=0.1)  # never the noise-free z
    # the same image, released in every attack epoch, gets a different z each time
    seen: dict[bytes, torch.Tensor] = {}
    repeated = 0
    for r in recorder.in_phase("attack_train"):
        for xi, zi in zip(r.x, r.z, strict=True):
            key = xi.contiguous().numpy().tobytes()
            if key in seen:
                repeated += 1
                assert not torch.equal(seen[key], zi)
            seen[key] = zi
    epochs = max(value for key, value in metrics.items() if key.startswith("attack/epochs_run/"))
    assert repeated == (epochs - 1) * len(trial.data.train)


def test_summary_metrics_are_the_documented_aggregates(spied_trial):
    trial, _, metrics, _ = spied_trial
    leakage = trial.config.attacks.leakage
    per_attacker = [metrics[f"privacy/leak_acc/{name}"] for name in leakage]
    assert len(per_attacker) == 2
    assert metrics["privacy/leak_acc"] == max(per_attacker)
    assert metrics["privacy/delta"] == pytest.approx(metrics["utility/acc"] - metrics["privacy/leak_acc"], abs=1e-12)
    private = trial.data.test.private.numpy()
    assert metrics["privacy/leak_chance"] == pytest.approx(np.bincount(private).max() / len(private))
    decoders = trial.config.attacks.reconstruction
    for metric, best in (("ssim", max), ("ms_ssim", max), ("psnr", max), ("l1", min), ("mse", min)):
        values = [metrics[f"recon/{metric}/{d}"] for d in decoders]
        assert metrics[f"recon/{metric}"] == best(values), metric
    for key in ("privacy/leak_acc", "utility/acc", "utility/acc_retrained", "privacy/leak_chance"):
        assert 0.0 <= metrics[key] <= 1.0


def labelled_data(task: torch.Tensor, private: torch.Tensor) -> suite.AttackData:
    """Attack data whose attacker and test splits both hold these labels (no images needed)."""
    split = TensorSplit(torch.zeros(len(task), 1, 2, 2, dtype=torch.uint8), task, private)
    return suite.AttackData(split, None, split, (int(task.max()) + 1, int(private.max()) + 1))


class FakeSimilarity:
    """Per-image scores whose means are the given values (one image per metric)."""

    def __init__(self, values: dict[str, float]):
        self.values = values

    def statistics(self) -> dict[str, Mean]:
        return {metric: Mean(torch.tensor([value])) for metric, value in self.values.items()}


def hits(correct: int, total: int = 20) -> torch.Tensor:
    return torch.arange(total) < correct


def evaluation_of(accuracies: dict[str, float], similarity: dict[str, FakeSimilarity]) -> suite.Evaluation:
    """An evaluation on 20 test examples whose classifiers have these accuracies."""
    task = torch.arange(20) % 2
    deployed = torch.where(hits(round(accuracies.pop("utility/deployed") * 20)), task, 1 - task)
    per_example = {name: hits(round(value * 20)) for name, value in accuracies.items()}
    per_example[suite.DEPLOYED] = deployed == task
    return suite.Evaluation(per_example, deployed, task, similarity)


def test_summarise_takes_the_strongest_attacker_per_metric():
    """Two decoders, each strongest on some metrics: every aggregate picks the right one
    (max for SSIM/MS-SSIM/PSNR, min for L1/MSE/LPIPS), and leak_acc is the max over attackers."""
    accuracies = {"utility/deployed": 0.8, "utility/retrained": 0.7, "leak/server_arch": 0.6, "leak/mlp": 0.65}
    similarity = {
        "recon/mirror": FakeSimilarity({"ssim": 0.5, "ms_ssim": 0.2, "psnr": 12.0, "l1": 0.20, "mse": 0.05, "lpips": 0.3}),
        "recon/fc": FakeSimilarity({"ssim": 0.3, "ms_ssim": 0.4, "psnr": 14.0, "l1": 0.10, "mse": 0.08, "lpips": 0.4}),
    }
    task = torch.tensor([0, 1, 1, 1, 2, 2, 0, 0])
    private = torch.tensor([3, 3, 3, 1, 1, 0, 2, 2])
    statistics, strongest = suite.summarise(evaluation_of(accuracies, similarity), labelled_data(task, private))
    metrics = point_values(statistics)
    assert metrics["privacy/leak_acc"] == pytest.approx(0.65)
    assert metrics["privacy/leak_acc/server_arch"] == pytest.approx(0.6) and metrics["privacy/leak_acc/mlp"] == pytest.approx(0.65)
    assert metrics["privacy/delta"] == pytest.approx(0.8 - 0.65)
    assert metrics["privacy/leak_chance"] == 3 / 8
    assert metrics["utility/acc"] == pytest.approx(0.8)
    assert metrics["utility/acc_retrained"] == pytest.approx(0.7)
    expected = {"ssim": 0.5, "ms_ssim": 0.4, "psnr": 14.0, "l1": 0.10, "mse": 0.05, "lpips": 0.3}
    for metric, value in expected.items():
        assert metrics[f"recon/{metric}"] == pytest.approx(value), metric
        assert metrics[f"recon/{metric}/mirror"] == pytest.approx(similarity["recon/mirror"].values[metric])
        assert metrics[f"recon/{metric}/fc"] == pytest.approx(similarity["recon/fc"].values[metric])
    assert strongest == "mirror"  # best SSIM: its reconstructions go in the gallery


def test_summarise_leaves_out_a_metric_no_decoder_computed():
    accuracies = {"utility/deployed": 0.5, "utility/retrained": 0.5, "leak/mlp": 0.4}
    similarity = {"recon/fc": FakeSimilarity({"ssim": 0.1, "ms_ssim": 0.1, "psnr": 9.0, "l1": 0.3, "mse": 0.1})}
    statistics, _ = suite.summarise(evaluation_of(accuracies, similarity), labelled_data(torch.tensor([0, 1]), torch.tensor([0, 1])))
    metrics = point_values(statistics)
    assert not any(key.startswith("recon/lpips") for key in metrics)
    assert metrics["recon/ssim"] == pytest.approx(0.1)


# Scripted validation scores per attack epoch (cap 3; the leakage classifiers' 6): each
# attacker's best epoch is known (a tie keeps the earlier epoch).
SCRIPTED_SCORES = {
    "leak/server_arch": [0.2, 0.9, 0.5, 0.4, 0.3, 0.2],
    "leak/mlp": [0.7, 0.1, 0.7, 0.6, 0.5, 0.7],
    "recon/mirror": [-3.0, -2.0, -1.0],
    "recon/fc": [-1.0, -1.0, -2.0],
    "utility/retrained": [0.3, 0.3, 0.3],
}
EXPECTED_EPOCH = {"leak/server_arch": 2, "leak/mlp": 1, "recon/mirror": 3, "recon/fc": 1, "utility/retrained": 1}


def learners_of(trial: Trial, attacks: AttackConfig) -> dict[str, training.Attacker]:
    """The networks the suite would train on `trial`'s frozen method, by record name."""
    return suite.build_attacks(AttackContext(trial.method, attacks, trial.data.classes))[1]


def released(trial: Trial, split: TensorSplit, batch_size: int) -> ReleasedSplit:
    return ReleasedSplit(trial.method.release_parts(), split, batch_size)


def test_each_attacker_keeps_the_weights_of_its_best_validation_epoch(monkeypatch):
    config = tiny_config(attacks__epochs=3)
    trial = Trial(config)
    attackers = learners_of(trial, config.attacks)
    selection = released(trial, trial.data.val, config.attacks.batch_size)
    snapshots: list[dict[str, dict[str, torch.Tensor]]] = []

    def scripted(attackers, scored):
        assert scored is selection
        epoch = len(snapshots)
        snapshots.append({name: {k: v.clone() for k, v in a.model.state_dict().items()} for name, a in attackers.items()})
        return {name: SCRIPTED_SCORES[name][epoch] for name in attackers}

    monkeypatch.setattr(training, "selection_scores", scripted)
    training.train_attackers(
        attackers, released(trial, trial.data.train, config.attacks.batch_size), config.attacks, torch.Generator().manual_seed(0), selection
    )
    assert len(snapshots) == 6
    assert {name: a.kept_epoch for name, a in attackers.items()} == EXPECTED_EPOCH
    for name, attacker in attackers.items():
        expected = snapshots[EXPECTED_EPOCH[name] - 1][name]
        final = attacker.model.state_dict()
        assert all(torch.equal(final[k], expected[k]) for k in expected), name
    # the epochs really differ, so restoring the wrong one would show
    assert not all(torch.equal(snapshots[0]["leak/server_arch"][k], snapshots[1]["leak/server_arch"][k]) for k in snapshots[0]["leak/server_arch"])


# Scripted scores for early stopping with patience 2 and a cap of 6 epochs (the leakage
# classifiers at twice both: patience 4, cap 12): `mlp` stalls after epoch 2 (stops after
# epoch 6), `fc` improves by less than min_improvement after epoch 1 (stops after epoch 3),
# `mirror` gains 0.06 % an epoch, under the 0.1 % threshold, but 0.12 % over two epochs, so it
# trains on to the cap (slow steady gains add up, as in torch's ReduceLROnPlateau and Keras'
# EarlyStopping); the others keep improving, server_arch to its own cap of 12.
PLATEAU_SCORES = {
    "leak/server_arch": [0.1 * epoch for epoch in range(1, 13)],
    "leak/mlp": [0.5, 0.6, 0.6, 0.55, 0.55, 0.55],
    "recon/mirror": [-1.0, -0.9994, -0.9988, -0.9982, -0.9976, -0.9970],
    "recon/fc": [-1.0, -0.99999, -0.99998],
    "utility/retrained": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
}


@pytest.mark.parametrize("decay_patience", [1, 2])
def test_attackers_stop_on_patience_and_halve_their_rate_after_decay_patience_stale_epochs(monkeypatch, decay_patience):
    config = tiny_config(attacks__epochs=6, attacks__patience=2, attacks__min_improvement=1e-3, attacks__decoder_min_improvement=1e-3,
                         attacks__decay_patience=decay_patience, attacks__restarts=0)  # fc's stall would be a restart
    trial = Trial(config)
    attackers = learners_of(trial, config.attacks)
    scored_epochs: dict[str, int] = dict.fromkeys(attackers, 0)
    rates: dict[str, list[float]] = {name: [] for name in attackers}

    def scripted(active, _):
        for name, attacker in active.items():
            scored_epochs[name] += 1
            rates[name].append(attacker.optimizer.param_groups[0]["lr"])
        return {name: PLATEAU_SCORES[name][scored_epochs[name] - 1] for name in active}

    monkeypatch.setattr(training, "selection_scores", scripted)
    data = released(trial, trial.data.train, config.attacks.batch_size)
    training.train_attackers(attackers, data, config.attacks, torch.Generator().manual_seed(0), released(trial, trial.data.val, 128))
    runs = {name: (a.epochs_run, a.converged, a.kept_epoch) for name, a in attackers.items()}
    assert runs == {
        "leak/server_arch": (12, False, 12), "leak/mlp": (6, True, 2), "recon/mirror": (6, False, 6),
        "recon/fc": (3, True, 3), "utility/retrained": (6, False, 6),
    }
    assert scored_epochs == {name: epochs for name, (epochs, _, _) in runs.items()}  # no attacker trains past its stop
    peak = {name: a.lr for name, a in attackers.items()}
    assert peak["recon/mirror"] == Mirror.peak_lr and peak["leak/mlp"] == PooledMLP.peak_lr
    # the rate in force at the end of each scored epoch: warm-up ends within epoch 1, then it
    # halves after every decay_patience-th epoch in a row that did not improve by min_improvement
    # (mlp: every 2 * decay_patience-th)
    expected = {
        1: {"leak/mlp": (1, 1, 1, 1, 0.5, 0.5), "recon/fc": (1, 1, 0.5), "recon/mirror": (1, 1, 0.5, 0.5, 0.25, 0.25)},
        2: {"leak/mlp": (1,) * 6, "recon/fc": (1, 1, 1), "recon/mirror": (1,) * 6},  # no stale run long enough before the stop
    }[decay_patience]
    for name, factors in expected.items():
        assert rates[name] == pytest.approx([peak[name] * f for f in factors]), name
    assert rates["leak/server_arch"] == pytest.approx([peak["leak/server_arch"]] * 12)


# Scripted scores for restarts (patience 2, cap 6; the leakage classifiers patience 4, cap 12):
# `fc` gains nothing on its first epoch, stops at epoch 3 stuck, restarts and learns; `mirror`
# is stuck before and after its one restart, so its second stop is a convergence; `mlp` gains
# once, then stalls: a plain stop, no restart.
RESTART_SCORES = {
    "leak/server_arch": [0.1 * epoch for epoch in range(1, 13)],
    "leak/mlp": [0.5, 0.6, 0.6, 0.6, 0.6, 0.6],
    "recon/mirror": [-1.0] * 6,
    "recon/fc": [-1.0, -1.0, -1.0, -0.9, -0.8, -0.7],
    "utility/retrained": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
}


def test_a_stuck_attacker_trains_again_from_its_initial_weights_at_half_its_rate(monkeypatch):
    config = tiny_config(attacks__epochs=6, attacks__patience=2, attacks__decay_patience=2, attacks__min_improvement=1e-3,
                         attacks__decoder_min_improvement=1e-3)
    trial = Trial(config)
    attackers = learners_of(trial, config.attacks)
    initial = {name: {k: v.clone() for k, v in a.net.state_dict().items()} for name, a in attackers.items()}
    names = {id(a): name for name, a in attackers.items()}
    scored_epochs: dict[str, int] = dict.fromkeys(attackers, 0)
    rates: dict[str, list[float]] = {name: [] for name in attackers}
    at_restart: dict[str, bool] = {}
    restart = training.Attacker.restart

    def recording_restart(self):
        trained = {k: v.clone() for k, v in self.net.state_dict().items()}
        restart(self)
        name = names[id(self)]
        back = all(torch.equal(v, initial[name][k]) for k, v in self.net.state_dict().items())
        at_restart[name] = back and not all(torch.equal(v, initial[name][k]) for k, v in trained.items())

    first_epoch_weights = {}

    def scripted(active, _):
        for name, attacker in active.items():
            scored_epochs[name] += 1
            rates[name].append(attacker.optimizer.param_groups[0]["lr"])
            if scored_epochs[name] == 1:
                first_epoch_weights[name] = {k: v.clone() for k, v in attacker.model.state_dict().items()}
        return {name: RESTART_SCORES[name][scored_epochs[name] - 1] for name in active}

    monkeypatch.setattr(training.Attacker, "restart", recording_restart)
    monkeypatch.setattr(training, "selection_scores", scripted)
    data = released(trial, trial.data.train, config.attacks.batch_size)
    training.train_attackers(attackers, data, config.attacks, torch.Generator().manual_seed(0), released(trial, trial.data.val, 128))
    runs = {name: (a.epochs_run, a.converged, a.kept_epoch, a.restarts) for name, a in attackers.items()}
    assert runs == {
        "leak/server_arch": (12, False, 12, 0), "leak/mlp": (6, True, 2, 0), "recon/mirror": (6, True, 1, 1),
        "recon/fc": (6, False, 6, 1), "utility/retrained": (6, False, 6, 0),
    }
    assert at_restart == {"recon/mirror": True, "recon/fc": True}  # from the initial weights, not the trained ones
    peak = Mirror.peak_lr
    # the rate at each scored epoch: the peak, then half of it from the restart on, after a fresh
    # warm-up (it ends within the restart's first epoch)
    assert rates["recon/mirror"] == pytest.approx([peak, peak, peak, peak / 2, peak / 2, peak / 2])
    assert attackers["recon/fc"].batches_seen == 3 * data.num_batches()  # its warm-up counted from the restart
    kept = attackers["recon/mirror"].model.state_dict()  # its best epoch was before the restart: kept over it
    assert all(torch.equal(kept[k], v) for k, v in first_epoch_weights["recon/mirror"].items())


def test_attack_metrics_say_how_long_each_attacker_trained_and_whether_it_converged():
    trial = Trial(tiny_config(attacks__epochs=2))
    trial.train_epoch()
    metrics, report = trial.attack()
    for name in ("leak/server_arch", "leak/mlp", "recon/mirror", "recon/fc", "utility/retrained"):
        curve = report.curves[name]  # one validation score per attack epoch, for the MLflow curves
        assert len(curve) == metrics[f"attack/epochs_run/{name}"]
        assert all(-1 <= score <= 1 for score in curve)
        cap = 2 * (LEAKAGE_STOPPING_SCALE if name.startswith("leak/") else 1)
        assert metrics[f"attack/epochs_run/{name}"] == cap  # default patience 5 (leakage: 10) > cap: none can converge
        assert metrics[f"attack/converged/{name}"] == 0.0
        assert 1 <= metrics[f"attack/kept_epoch/{name}"] <= metrics[f"attack/epochs_run/{name}"]


def test_an_attacker_with_its_own_batch_steps_once_per_chunk_of_the_released_batch():
    seen = []

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z):
            seen.append(z[:, 0, 0, 0].clone())
            return z.mean((1, 2, 3))[:, None, None, None].expand(-1, 1, 4, 4) + self.weight

    attacker = training.Attacker(Recording(), "image", lr=0.1, batch_size=64)
    z = torch.arange(150, dtype=torch.float32)[:, None, None, None].expand(-1, 2, 3, 3).contiguous()
    attacker.step(z, {"image": torch.zeros(150, 1, 4, 4), "task": torch.zeros(150), "private": torch.zeros(150)}, warmup=1.0)
    assert [len(chunk) for chunk in seen] == [64, 64, 22]
    assert torch.equal(torch.cat(seen), torch.arange(150, dtype=torch.float32))  # each image once, in order
    assert attacker.optimizer.state[attacker.net.weight]["step"] == 3
    seen.clear()
    attacker.step(z[:130], {"image": torch.zeros(130, 1, 4, 4)}, warmup=1.0)
    assert [len(chunk) for chunk in seen] == [64, 66]  # a tail of 2 joins the chunk before it
    assert attacker.optimizer.state[attacker.net.weight]["step"] == 5
    whole = training.Attacker(Recording(), "image", lr=0.1)
    whole.step(z, {"image": torch.zeros(150, 1, 4, 4)}, warmup=1.0)
    assert whole.optimizer.state[whole.net.weight]["step"] == 1
    assert Mirror.batch_size == 64 and FullyConnected.batch_size is None


def test_an_averaging_attacker_is_scored_and_evaluated_on_the_moving_average_of_its_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    attacker = training.Attacker(net, "private", lr=0.1, ema=0.5)
    assert attacker.model is net  # before any step there is nothing to average
    z, y = torch.randn(8, 4, 1, 1), torch.randint(0, 3, (8,))
    after_steps = []
    for _ in range(3):
        attacker.step(z, {"private": y}, warmup=1.0)
        after_steps.append({k: v.clone() for k, v in net.state_dict().items()})
    # the first step's weights, then each later step's averaged in at weight 1 - 0.5
    expected = {k: (after_steps[0][k] * 0.25 + after_steps[1][k] * 0.25 + after_steps[2][k] * 0.5) for k in ("1.weight", "2.running_mean")}
    averaged = attacker.model.state_dict()
    for key, value in expected.items():
        assert torch.allclose(averaged[key], value), key
        assert not torch.allclose(averaged[key], after_steps[-1][key]), key  # so the average is what is read

    class OneBatch:
        def __len__(self):
            return len(z)

        def batches(self):
            yield z, {"private": y}

    score = training.selection_scores({"a": attacker}, OneBatch())["a"]
    assert score == (attacker.model(z).argmax(1) == y).float().mean().item()
    assert not attacker.model.training and attacker.net.training  # the average was scored, the trained net left alone
    plain = training.Attacker(torch.nn.Linear(2, 2), "private", lr=0.1)
    plain.step(torch.randn(4, 2), {"private": torch.zeros(4, dtype=torch.long)}, warmup=1.0)
    assert plain.model is plain.net and plain.averaged is None


def test_the_leakage_classifiers_average_their_weights_unless_attacks_ema_says_otherwise_and_stop_at_twice_the_patience():
    trial = Trial(tiny_config())
    attackers = learners_of(trial, trial.config.attacks)
    assert {name: a.ema for name, a in attackers.items()} == {
        "leak/server_arch": LEAKAGE_EMA, "leak/mlp": LEAKAGE_EMA, "recon/mirror": 0.0, "recon/fc": 0.0, "utility/retrained": 0.0,
    }
    overridden = learners_of(trial, trial.config.attacks.model_copy(update={"ema": 0.0}))
    assert all(a.ema == 0.0 for a in overridden.values())
    assert {name: a.stopping_scale for name, a in attackers.items()} == {
        "leak/server_arch": LEAKAGE_STOPPING_SCALE, "leak/mlp": LEAKAGE_STOPPING_SCALE, "recon/mirror": 1, "recon/fc": 1,
        "utility/retrained": 1,
    }


@pytest.mark.parametrize(
    "n, size, lengths",
    [(150, 64, [64, 64, 22]), (140, 64, [64, 76]), (129, 64, [64, 65]), (64, 64, [64]), (10, 64, [10]), (1, 64, [1]), (100, None, [100])],
)
def test_chunks_cover_the_batch_once_in_order_and_a_short_tail_joins_the_chunk_before_it(n, size, lengths):
    slices = training.chunk_slices(n, size)
    assert [s.stop - s.start for s in slices] == lengths
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:], strict=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
def test_on_cuda_the_stopwatch_charges_device_time_to_the_part_that_queued_it():
    watch = training.Stopwatch(torch.device("cuda"))
    big = torch.randn(4096, 4096, device="cuda")
    with watch.timed("heavy"):
        for _ in range(20):
            big = big @ big / 4096
    with watch.timed("light"):
        big.add_(1)
    seconds = watch.seconds
    assert seconds["heavy"] > 10 * seconds["light"] > 0


def test_attack_time_is_split_by_part_and_charged_to_the_part_that_spent_it(monkeypatch):
    """A mirror decoder made 30 ms slower per step must show up as mirror's time, not another's."""
    delay = 0.03
    step = training.Attacker.step

    def slow_mirror_step(self, z, targets, warmup, bf16=False):
        if isinstance(self.net, MirrorDecoder):
            time.sleep(delay)
        return step(self, z, targets, warmup, bf16)

    monkeypatch.setattr(training.Attacker, "step", slow_mirror_step)
    trial = Trial(tiny_config(attacks__epochs=2, attacks__reconstruction=["mirror", "fc", "whitebox"], attacks__whitebox={"steps": 5, "images": 16}))
    trial.train_epoch()
    metrics, _ = trial.attack()
    parts = {k.removeprefix(suite.ATTACK_TIME_PREFIX): v for k, v in metrics.items() if k.startswith(suite.ATTACK_TIME_PREFIX)}
    learned = {"leak/server_arch", "leak/mlp", "recon/mirror", "recon/fc", "utility/retrained"}
    assert set(parts) == learned | {"recon/whitebox", "release", "validation", "test"}
    steps = metrics["attack/epochs_run/recon/mirror"] * released(trial, trial.data.attacker, trial.config.attacks.batch_size).num_batches()
    assert parts["recon/mirror"] >= steps * delay
    assert max(parts[name] for name in learned - {"recon/mirror"}) < parts["recon/mirror"] - steps * delay / 2
    assert all(seconds > 0 for seconds in parts.values())
    assert sum(parts.values()) <= metrics["time/attack_s"]


def test_selection_last_evaluates_the_final_epoch_without_scoring_validation(monkeypatch):
    config = tiny_config(attacks__epochs=2, attacks__selection="last")
    trial = Trial(config)
    trial.train_epoch()

    def never(*args, **kwargs):
        raise AssertionError("selection_scores called with attacks.selection = last")

    monkeypatch.setattr(training, "selection_scores", never)
    metrics, _ = trial.attack()
    kept = {k.removeprefix("attack/kept_epoch/"): v for k, v in metrics.items() if k.startswith("attack/kept_epoch/")}
    assert kept and kept == {name: 2.0 * (LEAKAGE_STOPPING_SCALE if name.startswith("leak/") else 1) for name in kept}  # each cap
    assert {v for k, v in metrics.items() if k.startswith("attack/converged/")} == {0.0}
