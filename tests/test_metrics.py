"""Metric computations: MS-SSIM settings for small images, LPIPS absent without weights,
client FLOPs and size."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import tiny_config
from torch import nn
from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure

import trainables.metrics as metrics_module
from trainables.methods import MethodContext, method_class
from trainables.methods.noisy_arl import add_gaussian_noise
from trainables.metric_keys import final_metric_keys, unknown_metric_reason
from trainables.metrics import (
    ImageSimilarity,
    client_gflops,
    lpips_unavailable_reason,
    ms_ssim_settings,
    params_mb,
)
from trainables.models import SplitArchitecture

SIZES = [(16, 16), (28, 28), (32, 32), (64, 64), (218, 218), (218, 178)]
EVERY_SIDE = range(16, 257)


def test_ms_ssim_runs_at_every_size_from_16_to_256():
    """26 and 50 px crashed torchmetrics' size check after training had finished."""
    failures = []
    g = torch.Generator().manual_seed(0)
    for side in EVERY_SIDE:
        kernel, betas = ms_ssim_settings(side, side)
        images = torch.rand(1, 1, side, side, generator=g)
        noisy = (images + 0.2 * torch.rand(images.shape, generator=g)).clamp(0, 1)
        try:
            value = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=kernel, betas=betas, normalize="relu")(noisy, images)
        except ValueError as error:
            failures.append((side, kernel, len(betas), str(error)[:80]))
            continue
        if not 0 < value.item() < 1:
            failures.append((side, kernel, len(betas), value.item()))
        if side >= 176:
            assert len(betas) == 5, side  # the standard five scales where they fit
    assert not failures


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_ms_ssim_settings_fit_and_identical_images_score_one(height, width):
    kernel, betas = ms_ssim_settings(height, width)
    assert kernel % 2 == 1
    assert sum(betas) == pytest.approx(1.0)
    if min(height, width) >= 16:
        assert len(betas) >= 2  # still multi-scale
    if min(height, width) > 160:
        assert (kernel, len(betas)) == (11, 5)  # the standard setting where it fits
    metric = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=kernel, betas=betas, normalize="relu")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, height, width, generator=g)
    identical = metric(images, images.clone()).item()
    assert identical == pytest.approx(1.0, abs=1e-4)
    metric.reset()
    noisy = (images + 0.3 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    different = metric(noisy, images).item()
    assert 0.0 <= different < 0.99


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 16, 16), (3, 32, 32)])
def test_image_similarity_of_identical_and_of_different_images(shape):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, *shape, generator=g)
    same = ImageSimilarity(shape, torch.device("cpu"))
    same.update(images, images.clone())
    perfect = same.compute()
    assert perfect["ssim"] == pytest.approx(1.0, abs=1e-4)
    assert perfect["ms_ssim"] == pytest.approx(1.0, abs=1e-4)
    assert perfect["l1"] == 0.0 and perfect["mse"] == 0.0
    other = torch.rand(4, *shape, generator=g)
    far = ImageSimilarity(shape, torch.device("cpu"))
    far.update(other, images)
    values = far.compute()
    assert values["mse"] == pytest.approx(((other - images) ** 2).mean().item(), rel=1e-5)
    assert values["l1"] == pytest.approx((other - images).abs().mean().item(), rel=1e-5)
    assert values["psnr"] == pytest.approx(10 * torch.log10(1 / ((other - images) ** 2).mean()).item(), rel=1e-4)
    assert values["ssim"] < 0.2


def test_image_similarity_accepts_channels_last_rgb_batches():
    """The trainer's batches and networks are channels-last; reconstructions of RGB images
    arrive as non-contiguous tensors."""
    images = torch.rand(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    recon = torch.rand(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    similarity = ImageSimilarity((3, 16, 16), torch.device("cpu"))
    similarity.update(recon, images)
    assert similarity.compute()["l1"] == pytest.approx((recon - images).abs().mean().item(), rel=1e-5)


@pytest.fixture
def empty_torch_hub(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.setattr(ImageSimilarity, "_reported_lpips", False)
    lpips_unavailable_reason.cache_clear()
    yield hub
    lpips_unavailable_reason.cache_clear()


def test_lpips_is_absent_with_the_reason_logged_once(empty_torch_hub, caplog):
    reason = lpips_unavailable_reason()
    assert reason is not None and str(empty_torch_hub) in reason
    images = torch.rand(2, 3, 32, 32)
    with caplog.at_level(logging.WARNING, logger=metrics_module.__name__):
        for _ in range(3):
            similarity = ImageSimilarity((3, 32, 32), torch.device("cpu"))
            similarity.update(images, images)
            assert "lpips" not in similarity.compute()
    logged = [r for r in caplog.records if "lpips" in r.getMessage().lower()]
    assert len(logged) == 1
    assert reason in logged[0].getMessage()

    config = tiny_config()
    keys = final_metric_keys(config)
    assert not any(key.startswith("recon/lpips") for key in keys)
    assert "recon/ssim" in keys and "recon/mse/fc" in keys
    assert reason in unknown_metric_reason("recon/lpips", config)


def test_lpips_counts_as_available_once_the_weights_are_cached(empty_torch_hub):
    (empty_torch_hub / "checkpoints").mkdir()
    (empty_torch_hub / "checkpoints" / metrics_module.ALEXNET_WEIGHTS).write_bytes(b"")
    assert lpips_unavailable_reason() is None
    assert "recon/lpips" in final_metric_keys(tiny_config())


def conv_macs(conv: nn.Conv2d, out_hw: tuple[int, int]) -> int:
    k_h, k_w = conv.kernel_size
    return conv.out_channels * out_hw[0] * out_hw[1] * (conv.in_channels // conv.groups) * k_h * k_w


def test_client_gflops_of_a_convolution_plus_noise_is_the_analytic_count():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    image = (3, 16, 16)
    device = torch.device("cpu")
    macs = conv_macs(conv, (16, 16))
    z_elements = 8 * 16 * 16

    conv_only = client_gflops(conv, image, device)
    assert conv_only * 1e9 == pytest.approx(2 * macs)
    # adding a noise tensor: one FLOP per element of z
    plus_noise = client_gflops(lambda x: conv(x) + torch.randn(1, 8, 16, 16), image, device)
    assert plus_noise * 1e9 == pytest.approx(2 * macs + z_elements)
    # the methods' Gaussian noise: sigma * eps (one multiply) + features (one add) per element
    scaled = client_gflops(lambda x: add_gaussian_noise(conv(x), 0.5), image, device)
    assert scaled * 1e9 == pytest.approx(2 * macs + 2 * z_elements)
    # sigma 0 adds nothing
    assert client_gflops(lambda x: add_gaussian_noise(conv(x), 0.0), image, device) == conv_only


def test_client_gflops_of_noisy_arl_exceeds_none_by_its_noise():
    image = (3, 16, 16)
    flops = {}
    for name, params in (("none", {}), ("noisy_arl", {"sigma": 1.0})):
        cls = method_class(name)
        arch = SplitArchitecture("small_cnn", "2", image)
        method = cls(MethodContext(arch, 3, 3, 1e-3), cls.Params.model_validate(params)).eval()
        flops[name] = client_gflops(method.release, image, torch.device("cpu")) * 1e9
        z_elements = int(torch.tensor(arch.z_shape).prod())
    first_conv_macs = 32 * 16 * 16 * 3 * 9 + 64 * 8 * 8 * 32 * 9  # small_cnn blocks 1-2
    assert flops["none"] >= 2 * first_conv_macs
    assert flops["noisy_arl"] - flops["none"] == pytest.approx(2 * z_elements)


def test_params_mb_counts_parameters_and_buffers():
    module = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(4))
    module.register_buffer("table", torch.zeros(100, dtype=torch.float64))
    expected_bytes = (10 * 5 + 5) * 4 + (4 + 4) * 4 + (4 + 4) * 4 + 8 + 100 * 8
    assert params_mb(module) == pytest.approx(expected_bytes / 2**20)
    assert params_mb(nn.Sequential()) == 0.0


def test_lpips_gives_the_lpips_packages_distances(monkeypatch):
    """torchmetrics' LPIPS against the `lpips` package (a dev dependency, kept as the oracle),
    both over the same random AlexNet (ImageNet weights cannot be downloaded here) and each
    with its own shipped v0.1 linear layers, on grey 28 px images (upsampled) and 64 px colour ones."""
    import lpips
    import torchvision

    alexnet = torchvision.models.alexnet

    def seeded_alexnet(**_):
        torch.manual_seed(1)
        return alexnet(weights=None)

    monkeypatch.setattr(torchvision.models, "alexnet", seeded_alexnet)
    ours = metrics_module.LPIPS()
    oracle = lpips.LPIPS(net="alex", verbose=False).eval()
    for shape in [(6, 1, 28, 28), (6, 3, 64, 64)]:
        torch.manual_seed(2)
        a, b = torch.rand(shape), torch.rand(shape)
        with torch.no_grad():
            expected = oracle(ours._prepare(a), ours._prepare(b)).flatten()
        got = ours(a, b)
        assert got.shape == (shape[0],) and expected.abs().min() > 0
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
