"""`python -m sweeps trial` end to end on the quickstart spec (real Fashion-MNIST, smoke
size) as a real process, and `validate` on every shipped spec."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, tiny_config
from PIL import Image

from sweeps.cli import main
from sweeps.spec import SMOKE_TRAIN_SIZE
from trainables.artifacts import RECONSTRUCTIONS_DPI, reconstruction_figure, trial_summary
from trainables.attacks.suite import AttackReport
from trainables.config import TrialConfig
from trainables.metrics import lpips_unavailable_reason
from trainables.models import SplitArchitecture

QUICKSTART = "sweeps/quickstart.yaml"
LEAKAGE = ("server_arch", "mlp")
DECODERS = ("mirror", "fc")
RECON = ("ssim", "ms_ssim", "psnr", "l1", "mse")


def design_keys() -> set[str]:
    keys = {
        "utility/acc", "utility/acc_retrained", "utility/mcc",
        "privacy/leak_acc", "privacy/leak_chance", "privacy/delta",
        "client/gflops", "client/params_mb", "time/train_s", "time/attack_s",
    }
    keys |= {f"privacy/leak_acc/{a}" for a in LEAKAGE}
    for metric in RECON:
        keys |= {f"recon/{metric}", *(f"recon/{metric}/{d}" for d in DECODERS)}
    return keys


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trial-out") / "artifacts"
    from conftest import run_sweeps_cli

    result = run_sweeps_cli("trial", QUICKSTART, "--smoke", "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return result, out


def test_json_has_every_final_metric_key_of_design(quickstart_run):
    result, _ = quickstart_run
    metrics = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert isinstance(metrics, dict)
    missing = design_keys() - set(metrics)
    assert not missing, f"missing metric keys: {sorted(missing)}"
    assert all(isinstance(v, float | int) and math.isfinite(v) for v in metrics.values())
    reason = lpips_unavailable_reason()
    if reason is None:
        assert "recon/lpips" in metrics and all(f"recon/lpips/{d}" in metrics for d in DECODERS)
    else:
        assert "recon/lpips" not in metrics
        assert reason in result.stderr  # absent only with the reason logged
        assert result.stderr.count("recon/lpips is not computed") == 1  # once
    assert "Traceback" not in result.stderr
    assert "epoch 1/1" in result.stderr  # --smoke: one epoch, progress on stderr


def test_what_a_trial_writes_is_private(quickstart_run):
    """`python -m sweeps` creates its files 0600 and its folders 0700, whatever the caller's
    umask (reconstructions of possibly private images, client weights)."""
    _, out = quickstart_run
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    written = list(out.iterdir())
    assert {p.name for p in written} >= {"metrics.json", "client.pt"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)


def test_json_values_are_consistent(quickstart_run):
    metrics = json.loads(quickstart_run[0].stdout)
    for key in ("utility/acc", "utility/acc_retrained", "privacy/leak_acc", "privacy/leak_chance"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["privacy/leak_acc"] == max(metrics[f"privacy/leak_acc/{a}"] for a in LEAKAGE)
    assert metrics["privacy/delta"] == pytest.approx(metrics["utility/acc"] - metrics["privacy/leak_acc"])
    assert metrics["client/gflops"] > 0 and metrics["client/params_mb"] > 0
    assert metrics["time/train_s"] > 0 and metrics["time/attack_s"] > 0
    # 10-way garment class on a fixed shuffle of the balanced test set: chance is about 0.1
    assert 0.08 < metrics["privacy/leak_chance"] < 0.2


def test_out_folder_holds_the_artifacts(quickstart_run):
    result, out = quickstart_run
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "metrics.json", "reconstructions.png", "curves.png", "client.pt"}
    with Image.open(out / "curves.png") as image:  # the defense's row above the attackers' row
        assert image.size == (11 * RECONSTRUCTIONS_DPI, round(8.4 * RECONSTRUCTIONS_DPI))

    config = TrialConfig.model_validate(yaml.safe_load((out / "config.yaml").read_text()))
    assert config.method == "noisy_arl"
    assert config.dataset.name == "fashion_mnist" and config.dataset.task == "coarse"
    assert config.train.epochs == 1 and config.dataset.train_size == SMOKE_TRAIN_SIZE  # the smoke version ran
    assert config.params == {"sigma": 1.0, "lambda": 0.01}

    assert json.loads((out / "metrics.json").read_text()) == json.loads(result.stdout)
    metrics = json.loads(result.stdout)
    strongest = [a for a in LEAKAGE if metrics[f"privacy/leak_acc/{a}"] == metrics["privacy/leak_acc"]]  # ties happen at this size
    summary = (out / "summary.md").read_text()
    assert any(f"leakage `{a}` ({metrics['privacy/leak_acc']:.3f})" in summary for a in strongest)

    png = out / "reconstructions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.load()
        gallery = config.attacks.gallery
        assert gallery > 0
        # the labelled figure: its width grows with the gallery (0.7 in per image, at least 4.5 in)
        assert image.size == (round(max(4.5, 0.7 * gallery + 0.7) * RECONSTRUCTIONS_DPI), round(2.4 * RECONSTRUCTIONS_DPI))

    state = torch.load(out / "client.pt", weights_only=True)
    client = SplitArchitecture(config.model.backbone, config.model.split, (1, 28, 28)).client()
    client.load_state_dict(state)  # strict: exactly the client network, nothing of the server
    assert all(torch.isfinite(v.float()).all() for v in state.values())


def test_the_reconstructions_figure_names_the_attacker_and_each_image_ssim():
    originals = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    reconstructions = torch.stack([originals[0], torch.zeros(1, 28, 28), originals[2].flip(-1)])
    report = AttackReport({"recon/ssim": 0.4321}, originals, reconstructions, "whitebox")
    figure = reconstruction_figure(report)
    axes = [ax for ax in figure.axes if ax.images]
    assert len(axes) == 6  # originals above reconstructions
    rows = sorted({round(ax.get_position().y0, 3) for ax in axes}, reverse=True)
    top = [ax for ax in axes if round(ax.get_position().y0, 3) == rows[0]]
    assert top[0].get_ylabel() == "original"
    labels = [ax.get_xlabel() for ax in axes if round(ax.get_position().y0, 3) == rows[1]]
    assert labels[0] == "SSIM 1.00" and float(labels[1].split()[1]) < 0.1  # identical, then blank
    assert "whitebox" in figure._suptitle.get_text() and "0.432" in figure._suptitle.get_text()


SPECS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "sweeps").glob("*.yaml"))


def test_shipped_specs_exist():
    assert "sweeps/quickstart.yaml" in SPECS and "sweeps/noisy_arl.yaml" in SPECS


@pytest.mark.parametrize("spec", SPECS)
def test_every_shipped_spec_validates(spec, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    for smoke in ([], ["--smoke"]):
        assert main(["validate", spec, *smoke]) == 0, capsys.readouterr().err
        captured = capsys.readouterr()
        resolved = yaml.safe_load(captured.out)
        assert resolved["name"] == yaml.safe_load(Path(REPO / spec).read_text())["name"]
        assert "# valid:" in captured.err


def test_validate_as_a_process(sweeps_cli):
    result = sweeps_cli("validate", QUICKSTART)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["method"] == "noisy_arl"
    assert set(resolved["search_space"]) == {"params.sigma", "params.lambda", "model.split"}


def test_configuration_id_ignores_the_seed_only():
    from trainables.tracking import configuration_id
    from trainables.tune_trainable import replicate_config, replicate_mean

    config = tiny_config()
    dumped = config.model_dump(mode="json", by_alias=True)
    second = replicate_config(config, 1)
    assert second.train.seed == config.train.seed + 1 and second.params == config.params
    assert configuration_id(second.model_dump(mode="json", by_alias=True)) == configuration_id(dumped)
    other = tiny_config(attacks__epochs=config.attacks.epochs + 1).model_dump(mode="json", by_alias=True)
    assert configuration_id(other) != configuration_id(dumped)
    elsewhere = tiny_config(train__device="cpu", attacks__gallery=2, attacks__bootstrap=500).model_dump(mode="json", by_alias=True)
    assert configuration_id(elsewhere) == configuration_id(dumped)  # where it ran and what it drew change no result
    mean = replicate_mean([{"utility/acc": 0.8, "only/here": 1.0}, {"utility/acc": 0.6}])
    assert mean == {"utility/acc": pytest.approx(0.7), "privsweep/replicates": 2.0}


def test_a_finished_run_stays_finished_when_its_trial_restarts(tmp_path):
    """A trial restarted after replicate 0 finished must find that run FINISHED, with its
    results, instead of reopening it as RUNNING and training it again."""
    from trainables.tracking import TrialRun

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(uri).create_experiment("restart", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = MlflowClient(uri).create_run(experiment).info.run_id
    first = TrialRun.open(uri, experiment, parent, "t1", "L", "none", "none", {"a": 1}, replicate=0)
    first.log({"utility/acc": 0.9})
    first.finish()
    again = TrialRun.open(uri, experiment, parent, "t1", "L", "none", "none", {"a": 1}, replicate=0)
    assert again.run_id == first.run_id and again.final_metrics() == {"utility/acc": 0.9}
    second = TrialRun.open(uri, experiment, parent, "t1", "L", "none", "none", {"a": 1}, replicate=1)
    assert second.run_id != first.run_id and second.final_metrics() is None


def test_the_summary_flags_what_makes_a_number_a_bound():
    """summary.md (a run's description): intervals beside values, the strongest attacker of
    each family, an unconverged defense and capped attackers said in words."""
    metrics = {
        "utility/acc": 0.9, "utility/acc:ci95_lo": 0.88, "utility/acc:ci95_hi": 0.92,
        "privacy/leak_acc": 0.7, "privacy/leak_acc/mlp": 0.6, "privacy/leak_acc/server_arch": 0.7,
        "privacy/leak_acc/server_arch:ci95_lo": 0.65, "recon/ssim": 0.8, "recon/ssim/fc": 0.8, "recon/ssim/mirror": 0.5,
        "train/converged": 0.0, "train/epochs_run": 30.0,
        "attack/converged/leak/mlp": 1.0, "attack/converged/recon/fc": 0.0,
        "privacy/leak_acc:query": 0.7, "recon/ssim:query": 0.8, "recon/ssim:white_box": 0.45,
    }
    summary = trial_summary(metrics, ["recon/ssim", "utility/acc"])
    assert "Strongest per threat model (what the attacker knows, docs/metrics.md): white_box: SSIM 0.450; query: leakage 0.700, SSIM 0.800." in summary
    lines = summary.splitlines()
    assert lines[2] == "| `recon/ssim` | 0.800 | – |" and lines[3] == "| `utility/acc` | 0.900 | [0.880, 0.920] |"  # objectives first
    assert "leakage `server_arch` (0.700), reconstruction `fc` (0.800)" in summary
    assert "Defense: 30 epochs, stopped at its epoch cap (not converged)." in summary
    assert "at their epoch cap: `recon/fc` (their numbers are lower bounds)" in summary
    converged = trial_summary({**metrics, "train/converged": 1.0, "attack/converged/recon/fc": 1.0})
    assert "converged by its rule" in converged and "Learned attackers: all converged." in converged
