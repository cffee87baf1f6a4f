"""The attack suite's inference-time release ratios (`attacks.release_ratios`): metrics at
each ratio for the methods with the knob, an input error for the others. Synthetic 16x16
images and tiny slices keep them fast."""

from __future__ import annotations

import pytest
import torch

from trainables.attacks.suite import AttackData, run_attack_suite
from trainables.config import AttackConfig, TrialConfig
from trainables.data import synthetic
from trainables.data.batches import TensorSplit
from trainables.errors import InputError
from trainables.trial import check_config

from .helpers import make


def tiny_attack_data() -> AttackData:
    data = synthetic.load(train_size=64, test_size=32, image_size=16)
    train, test = (TensorSplit.from_split(split, "shape", "color", torch.device("cpu")) for split in (data.train, data.test))
    return AttackData(train, None, test, (3, 3))


@pytest.mark.parametrize("name", ["disco", "random_pruning"])
def test_suite_logs_metrics_at_each_release_ratio(name):
    method = make(name, {"pruning_ratio": 0.5})
    cfg = AttackConfig(epochs=1, batch_size=32, gallery=2, release_ratios=[0.2, 0.8], reconstruction=["mirror", "fc"])
    report = run_attack_suite(method, tiny_attack_data(), cfg, seed=0)
    for key in ("utility/acc", "utility/acc_retrained", "privacy/leak_acc", "privacy/leak_acc/mlp", "recon/ssim", "recon/l1"):
        assert key in report.metrics
        for ratio in ("0.2", "0.8"):
            assert f"{key}:R{ratio}" in report.metrics
    assert method.release_ratio == 0.5  # restored after the suite



def test_release_ratios_on_a_method_without_the_knob_is_an_input_error():
    data = tiny_attack_data()
    cfg = AttackConfig(epochs=1, release_ratios=[0.5])
    with pytest.raises(InputError, match="attacks.release_ratios"):
        run_attack_suite(make("none"), data, cfg, seed=0)
    config = TrialConfig(method="maxent", dataset={"name": "synthetic", "task": "shape", "private": "color"}, attacks=cfg)
    with pytest.raises(InputError, match="attacks.release_ratios"):
        check_config(config)
    bad = TrialConfig(method="disco", dataset={"name": "synthetic", "task": "shape", "private": "color"},
                      attacks=AttackConfig(release_ratios=[1.0]))
    with pytest.raises(InputError, match="attacks.release_ratios"):
        check_config(bad)
