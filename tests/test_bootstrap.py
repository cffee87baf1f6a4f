"""Test-set bootstrap intervals: coverage of a known truth, statistics equal to the library
metrics they replace, a max over attackers resampled jointly, the white-box subset's strata."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config
from torchmetrics.functional.classification import multiclass_matthews_corrcoef
from torchmetrics.image import (
    MultiScaleStructuralSimilarityIndexMeasure,
    PeakSignalNoiseRatio,
    StructuralSimilarityIndexMeasure,
)

from trainables.bootstrap import (
    Best,
    Difference,
    MajorityRate,
    Matthews,
    Mean,
    Psnr,
    bootstrap_intervals,
    interval_keys,
    point_values,
    resample_weights,
)
from trainables.metric_keys import final_metric_keys
from trainables.metrics import ImageSimilarity, ms_ssim_settings
from trainables.schema import is_interval_key
from trainables.trial import Trial

REPETITIONS = 200


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_the_accuracy_interval_covers_a_known_true_accuracy():
    """A fixed predictor (x > 0) of y from x ~ N(2y - 1, 1) is right with probability
    Phi(1) = 0.841. On freshly drawn test sets of 400 examples, the 95 % interval must cover
    the truth in 90-99 % of 200 repetitions: an interval that is too narrow (or a bootstrap
    that resamples the wrong thing) covers less, one that is too wide covers nearly always."""
    truth = normal_cdf(1.0)
    generator = torch.Generator().manual_seed(0)
    covered = 0
    for repetition in range(REPETITIONS):
        labels = torch.randint(0, 2, (400,), generator=generator)
        x = 2.0 * labels - 1 + torch.randn(400, generator=generator)
        correct = (x > 0).long() == labels
        low, high = bootstrap_intervals({"acc": Mean(correct)}, 1000, seed=repetition).values()
        covered += low <= truth <= high
    assert 0.90 <= covered / REPETITIONS <= 0.99, covered


def test_the_interval_of_a_skewed_per_image_score_covers_its_mean():
    """Per-image scores from a skewed Beta(5, 2) (like SSIM near its top): the interval of
    their mean covers the true mean 5/7 in 90-99 % of 200 fresh test sets of 300 images."""
    beta = torch.distributions.Beta(torch.tensor(5.0), torch.tensor(2.0))
    torch.manual_seed(1)
    covered = 0
    for repetition in range(REPETITIONS):
        scores = beta.sample((300,))
        low, high = bootstrap_intervals({"ssim": Mean(scores)}, 1000, seed=repetition).values()
        covered += low <= 5 / 7 <= high
    assert 0.90 <= covered / REPETITIONS <= 0.99, covered


def test_the_max_over_attackers_is_the_max_in_each_resample():
    """Two independent attackers with the same true accuracy: the max is resampled jointly,
    so its lower end lies above both attackers' lower ends. Taking the max of the two
    intervals would put it exactly at the larger one."""
    generator = torch.Generator().manual_seed(2)
    a = torch.rand(2000, generator=generator) < 0.7
    b = torch.rand(2000, generator=generator) < 0.7
    statistics = {"a": Mean(a), "b": Mean(b), "max": Best([Mean(a), Mean(b)], higher_is_better=True)}
    intervals = bootstrap_intervals(statistics, 1000, seed=0)
    assert intervals["max:ci95_lo"] > max(intervals["a:ci95_lo"], intervals["b:ci95_lo"]) + 1e-3
    weights = resample_weights([2000], 50, torch.Generator().manual_seed(0))
    assert torch.equal(statistics["max"](weights), torch.maximum(Mean(a)(weights), Mean(b)(weights)))
    minimum = Best([Mean(a.double()), Mean(b.double())], higher_is_better=False)
    assert torch.equal(minimum(weights), torch.minimum(Mean(a)(weights), Mean(b)(weights)))


def test_an_attacker_without_a_value_does_not_compete_for_the_max():
    present, absent = Mean(torch.tensor([0.2, 0.4])), Mean(torch.tensor([float("nan"), 0.1]))
    assert point_values({"best": Best([present, absent], higher_is_better=True)}) == {"best": pytest.approx(0.3)}
    assert point_values({"none": Best([absent], higher_is_better=True)}) == {}


def test_delta_is_resampled_jointly():
    """Utility and leakage of the same examples move together; Δ's interval is that of the
    per-resample difference, narrower than the difference of the two intervals' ends here."""
    generator = torch.Generator().manual_seed(3)
    utility = torch.rand(1000, generator=generator) < 0.8
    leak = utility & (torch.rand(1000, generator=generator) < 0.9)  # leaks mostly where utility is right
    statistics = {"u": Mean(utility), "l": Mean(leak), "delta": Difference(Mean(utility), Mean(leak))}
    intervals = bootstrap_intervals(statistics, 1000, seed=0)
    joint = intervals["delta:ci95_hi"] - intervals["delta:ci95_lo"]
    separate = (intervals["u:ci95_hi"] - intervals["l:ci95_lo"]) - (intervals["u:ci95_lo"] - intervals["l:ci95_hi"])
    assert joint < 0.5 * separate


def test_a_subset_statistic_is_resampled_within_its_own_stratum():
    """The white-box attacker scores the first m test images only: every resample draws
    exactly m of them from [0, m) and n - m from [m, n)."""
    weights = resample_weights([64, 500], 30, torch.Generator().manual_seed(0))
    assert weights.shape == (30, 500)
    assert torch.all(weights[:, :64].sum(1) == 64) and torch.all(weights[:, 64:].sum(1) == 436)
    scores = torch.zeros(500, dtype=torch.float64)
    scores[:64] = 1.0
    assert torch.all(Mean(scores[:64])(weights) == 1.0)  # the subset never draws an image past m
    subset, whole = Mean(torch.rand(64)), Mean(torch.rand(500))
    intervals = bootstrap_intervals({"whitebox": subset, "decoder": whole}, 1000, seed=0)
    assert intervals["whitebox:ci95_hi"] - intervals["whitebox:ci95_lo"] > 2 * (intervals["decoder:ci95_hi"] - intervals["decoder:ci95_lo"])


def test_intervals_are_seeded():
    correct = torch.rand(300, generator=torch.Generator().manual_seed(4)) < 0.6
    first = bootstrap_intervals({"acc": Mean(correct)}, 1000, seed=7)
    assert bootstrap_intervals({"acc": Mean(correct)}, 1000, seed=7) == first
    assert bootstrap_intervals({"acc": Mean(correct)}, 1000, seed=8) != first


@pytest.mark.parametrize("constant", [False, True])
def test_matthews_equals_torchmetrics(constant):
    generator = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 4, (300,), generator=generator)
    preds = torch.zeros_like(labels) if constant else torch.where(torch.rand(300, generator=generator) < 0.6, labels, torch.randint(0, 4, (300,), generator=generator))
    expected = float(multiclass_matthews_corrcoef(preds, labels, num_classes=4))
    assert point_values({"mcc": Matthews(preds, labels, 4)})["mcc"] == pytest.approx(expected, abs=1e-6)


def test_majority_rate_is_the_share_of_the_most_frequent_label():
    labels = torch.tensor([2, 2, 2, 0, 1, 1])
    assert point_values({"chance": MajorityRate(labels, 3)})["chance"] == pytest.approx(0.5)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_image_similarity_equals_torchmetrics_class_metrics(shape):
    """The per-image records give what torchmetrics' accumulating metrics gave, over batches
    of different sizes."""
    kernel, betas = ms_ssim_settings(*shape[1:])
    reference = {
        "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        "ms_ssim": MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=kernel, betas=betas, normalize="relu"),
        "psnr": PeakSignalNoiseRatio(data_range=1.0),
    }
    similarity = ImageSimilarity(shape, torch.device("cpu"))
    generator = torch.Generator().manual_seed(6)
    images, reconstructions = [], []
    for batch in (5, 3, 8):
        image = torch.rand(batch, *shape, generator=generator)
        reconstruction = (image + 0.2 * torch.randn(image.shape, generator=generator)).clamp(0, 1)
        similarity.update(reconstruction, image)
        for metric in reference.values():
            metric.update(reconstruction, image)
        images.append(image)
        reconstructions.append(reconstruction)
    values = similarity.compute()
    for name, metric in reference.items():
        assert values[name] == pytest.approx(metric.compute().item(), rel=1e-5), name
    error = torch.cat(reconstructions) - torch.cat(images)
    assert values["mse"] == pytest.approx(error.pow(2).mean().item(), rel=1e-6)
    assert values["l1"] == pytest.approx(error.abs().mean().item(), rel=1e-6)
    assert point_values({"psnr": Psnr(error.pow(2).flatten(1).sum(1), math.prod(shape))})["psnr"] == pytest.approx(values["psnr"])


def test_a_trial_logs_an_interval_beside_every_final_metric_it_samples():
    """Every final metric measured on the test split has `<key>:ci95_lo` <= `:ci95_hi`
    beside it; a plain accuracy's interval holds its value; costs and times have none."""
    trial = Trial(tiny_config(method="privacy_partitioning", params={}))
    trial.train_epoch()
    metrics, _ = trial.attack()
    sampled = [key for key in final_metric_keys(trial.config) if not key.startswith(("client/", "time/")) and not is_interval_key(key)]
    assert "privacy/leak_floor" in sampled and "recon/ssim/mirror" in sampled
    assert "recon/proxy_ssim" in metrics  # Privacy Partitioning's own decoders
    for key in [*sampled, "recon/proxy_ssim"]:
        low, high = (metrics[k] for k in interval_keys(key))
        assert low <= high, key
    for key in ("utility/acc", "recon/ssim/fc", "privacy/leak_floor"):
        low, high = (metrics[k] for k in interval_keys(key))
        assert low <= metrics[key] <= high and high - low > 0, key
    assert not any(is_interval_key(key) for key in metrics if key.startswith(("client/", "time/", "attack/")))
