"""Mechanism tests for the reconstruction-defending methods `privacy_partitioning`,
`adv_recon` and `deep_obfuscator`, and for their differentiable SSIM / MS-SSIM
(`trainables.methods.recon_common`). Synthetic 16x16 images keep them fast."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure as tm_ms_ssim,
)
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

import trainables.methods.privacy_partitioning as pp_module
from trainables.data.batches import TensorSplit
from trainables.errors import InputError
from trainables.methods import MethodContext, method_class
from trainables.methods.privacy_partitioning import FCDefender, PrivacyPartitioning
from trainables.methods.recon_common import keeping_buffers, ms_ssim, ssim, step
from trainables.metrics import ms_ssim_settings
from trainables.models import SplitArchitecture
from trainables.models.reversed_decoder import ReversedDecoder

IMAGE = (3, 16, 16)
DO_MODULES = ("obfuscator", "classifier", "adversary_classifier", "reconstructor")


def make(name: str, params: dict | None = None, split: str = "2", lr: float = 1e-3, backbone: str = "small_cnn",
         image=IMAGE, seed: int = 0):
    torch.manual_seed(seed)
    cls = method_class(name)
    arch = SplitArchitecture(backbone, split, image)
    return cls(MethodContext(arch, 3, 3, lr), cls.Params.model_validate(params or {}))


def images(n: int, seed: int = 0, image=IMAGE) -> torch.Tensor:
    """8-bit images scaled to [0, 1], as the data pipeline hands them over."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *image), generator=g).float() / 255


def batch(n: int = 16, seed: int = 0, image=IMAGE):
    g = torch.Generator().manual_seed(seed + 1000)
    return images(n, seed, image), torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed_entries(module: nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def param_names(module: nn.Module) -> set[str]:
    return {k for k, _ in module.named_parameters()}


def grads(loss: torch.Tensor, module: nn.Module) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(module.parameters()), retain_graph=True))


def close(got: list[torch.Tensor | None], expected: list[torch.Tensor], atol: float = 1e-6) -> bool:
    return all(g is not None and torch.allclose(g, e, atol=atol, rtol=1e-4) for g, e in zip(got, expected, strict=True))


# ------------------------------------------------------------------ recon_common: SSIM / MS-SSIM

SHAPES = [(3, 16, 16), (1, 28, 28), (3, 32, 32), (2, 20, 24)]


def _pair(shape, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(5, *shape, generator=g)
    # reconstruction-like predictions (the target blurred and noised), a constant image (zero
    # variance), an inverted one (negative structure terms, clipped by the relu) and an unrelated one
    preds = (F.avg_pool2d(target, 3, 1, 1) + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    preds[2] = 0.5
    preds[3] = 1 - target[3]
    preds[4] = torch.rand(shape, generator=g)
    return preds, target


@pytest.mark.parametrize("shape", SHAPES)
def test_ssim_matches_torchmetrics_value_and_gradient(shape):
    preds, target = _pair(shape)
    ours_in, theirs_in = preds.clone().requires_grad_(), preds.clone().requires_grad_()
    ours = ssim(ours_in, target)
    theirs = tm_ssim(theirs_in, target, data_range=1.0)  # Gaussian sigma 1.5, 11 taps
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    ours.backward()
    theirs.backward()
    assert torch.allclose(ours_in.grad, theirs_in.grad, atol=1e-5, rtol=1e-3)
    assert ssim(target, target).item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_ms_ssim_matches_torchmetrics_value_and_gradient(shape):
    kernel, betas = ms_ssim_settings(*shape[1:])
    assert len(betas) >= 2
    preds, target = _pair(shape, seed=1)
    ours_in, theirs_in = preds.clone().requires_grad_(), preds.clone().requires_grad_()
    ours = ms_ssim(ours_in, target)
    theirs = tm_ms_ssim(theirs_in, target, data_range=1.0, kernel_size=kernel, betas=betas, normalize="relu")
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)
    ours.backward()
    theirs.backward()
    assert torch.isfinite(ours_in.grad).all()
    assert torch.allclose(ours_in.grad, theirs_in.grad, atol=1e-5, rtol=1e-3)


def test_keeping_buffers_restores_running_statistics_after_a_train_mode_forward():
    bn = nn.BatchNorm2d(3).train()
    before = snapshot(bn)
    with keeping_buffers(bn):
        out = bn(torch.rand(4, 3, 5, 5) * 3)
        assert not torch.equal(bn.running_mean, before["running_mean"])  # it did run in train mode
    out.sum().backward()  # the graph that saved the statistics stays usable
    assert changed_entries(bn, before) == set()


# ------------------------------------------------------------------ privacy_partitioning


def _pp(params: dict, lr: float = 1e-3, **kwargs) -> PrivacyPartitioning:
    return make("privacy_partitioning", params, lr=lr, **kwargs).train()


def test_pp_defender_suite_is_deconv_fc_sparse_fc_and_the_deconv_reverses_pp_cnn_pool1():
    method = _pp({"defenders": 3, "optimizer": "sgd"}, backbone="pp_cnn", split="pool1", image=(3, 32, 32))
    deconv, fc, sparse = method.defenders
    assert method.defender_names == ("deconv", "fc", "sparse_fc")
    assert isinstance(deconv, ReversedDecoder)
    transposed = [m for m in deconv.modules() if isinstance(m, nn.ConvTranspose2d)]
    # conv5x5 -> conv5x5 -> pool1 reversed: a stride-2 5x5 deconv (pool + conv), then a stride-1 one
    assert [(m.stride, m.kernel_size, m.in_channels, m.out_channels) for m in transposed] == [
        ((2, 2), (5, 5), 32, 32), ((1, 1), (5, 5), 32, 3)]
    assert isinstance(fc, FCDefender) and not any(isinstance(m, nn.Dropout) for m in fc.modules())
    assert isinstance(sparse, FCDefender) and [m.p for m in sparse.modules() if isinstance(m, nn.Dropout)] == [0.5]
    z = method.release(images(2, image=(3, 32, 32)))
    for defender in method.defenders:
        out = defender(z)
        assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    group = method.optimizers["defender_deconv"].param_groups[0]
    assert isinstance(method.optimizers["client"], torch.optim.SGD) and (group["momentum"], group["weight_decay"]) == (0.9, 5e-4)


def test_pp_every_defender_steps_on_detached_features_and_step_three_leaves_them_alone(monkeypatch):
    method = _pp({"defenders": 3, "distance": "mse", "lambda": 1.0})
    replay = copy.deepcopy(method)
    client_before = snapshot(method.client)
    calls = []
    real_step = pp_module.step

    def spy(loss, optimizers, *modules):
        client_params = list(method.client.parameters())
        reaches_client = any(
            g is not None for g in torch.autograd.grad(loss, client_params, retain_graph=True, allow_unused=True))
        calls.append((modules, reaches_client, changed_entries(method.client, client_before)))
        real_step(loss, optimizers, *modules)

    monkeypatch.setattr(pp_module, "step", spy)
    x, y, s = batch()
    torch.manual_seed(7)
    losses = method.train_step(x, y, s)

    # 1. one step per defender, in suite order, none reaching the client, the client untouched
    assert [modules for modules, _, _ in calls[:3]] == [(d,) for d in method.defenders]
    assert [reaches for _, reaches, _ in calls] == [False, False, False, True]
    assert all(not changed & param_names(method.client) for _, _, changed in calls[:3])
    # 3. then exactly one step of the model
    assert calls[3][0] == (method.client, method.server)

    # replay step 1 by hand: the defenders end exactly there (step 2/3 changed neither their
    # parameters nor their batch-norm statistics), and step 2 chose among the updated defenders
    torch.manual_seed(7)
    h = replay.client(x)
    for name, defender in zip(replay.defender_names, replay.defenders, strict=True):
        step(F.mse_loss(defender(h.detach()), x), [replay.optimizers[f"defender_{name}"]], defender)
    for got, expected in zip(method.defenders, replay.defenders, strict=True):
        assert changed_entries(got, snapshot(expected)) == set()
    with torch.no_grad(), keeping_buffers(*replay.defenders):
        distances = [F.mse_loss(d(h), x).item() for d in replay.defenders]
    best = min(range(3), key=distances.__getitem__)
    assert method.last_best_defender == replay.defender_names[best]
    assert losses["defender_distance"] == pytest.approx(distances[best], rel=1e-5)
    # and the defenders did move in step 1
    fresh = _pp({"defenders": 3, "distance": "mse", "lambda": 1.0})
    assert all(changed_entries(d, snapshot(f)) & param_names(d) for d, f in zip(method.defenders, fresh.defenders, strict=True))


def test_pp_defenders_train_at_ten_times_the_model_rate_unless_set_and_take_defender_steps(monkeypatch):
    """§V-B: defenders at 1e-3, the model at 1e-4; `defender_steps` updates per batch."""
    method = _pp({"defenders": 2}, lr=1e-4)
    rates = {name: optimizer.param_groups[0]["lr"] for name, optimizer in method.optimizers.items()}
    assert rates == {"client": 1e-4, "server": 1e-4, "defender_deconv": pytest.approx(1e-3), "defender_fc": pytest.approx(1e-3)}
    assert _pp({"defender_lr": 5e-3}, lr=1e-4).optimizers["defender_deconv"].param_groups[0]["lr"] == 5e-3
    method = _pp({"defenders": 2, "defender_steps": 3})
    updated = []
    real_step = pp_module.step
    monkeypatch.setattr(pp_module, "step", lambda loss, optimizers, *modules: (updated.append(modules), real_step(loss, optimizers, *modules)))
    method.train_step(*batch())
    assert updated == [(method.defenders[0],)] * 3 + [(method.defenders[1],)] * 3 + [(method.client, method.server)]


@pytest.mark.parametrize("best", [1, 0])
def test_pp_model_gradient_flows_through_the_best_defender_only(monkeypatch, best):
    method = _pp({"defenders": 3, "lambda": 1.0}, lr=0.0)  # lr 0: gradients can be recomputed after the step
    bias = [0.5, 0.5, 0.5]
    bias[best] = 0.0  # this defender's distance is lowest
    current = {}
    reached = []
    for k, defender in enumerate(method.defenders):

        def hook(module, inputs, output, k=k):
            current["k"] = k
            if inputs[0].requires_grad:  # step 2 (model); step 1 sees detached features
                output.register_hook(lambda grad, k=k: reached.append(k))

        defender.register_forward_hook(hook)
    real_distance = PrivacyPartitioning.distance.__get__(method)
    monkeypatch.setattr(method, "distance", lambda x, r: real_distance(x, r) + bias[current["k"]])

    x, y, s = batch()
    method.train_step(x, y, s)
    assert method.last_best_defender == method.defender_names[best]
    assert reached == [best]  # no gradient came back through any other defender's output

    got = [p.grad.clone() for p in method.client.parameters()]
    h = method.client(x)
    task = F.cross_entropy(method.server(h), y)
    with keeping_buffers(*method.defenders):
        by_defender = [grads(task - (1 - ssim(method.defenders[k](h), x)), method.client) for k in (0, 1)]
    assert close(got, by_defender[best], atol=1e-6)
    assert not close(got, by_defender[1 - best], atol=1e-6)
    assert close([p.grad for p in method.server.parameters()], grads(task, method.server))


def test_pp_lambda_zero_is_plain_task_training():
    method = _pp({"defenders": 2, "lambda": 0.0})
    plain = copy.deepcopy(method)
    assert plain.optimizers["client"].param_groups[0]["params"][0] is next(plain.client.parameters())
    x, y, s = batch()
    method.train_step(x, y, s)
    step(F.cross_entropy(plain.server(plain.client(x)), y), [plain.optimizers["client"], plain.optimizers["server"]],
         plain.client, plain.server)
    for got, expected in ((method.client, plain.client), (method.server, plain.server)):
        before = snapshot(expected)
        assert all(torch.allclose(v, before[k], atol=1e-7) for k, v in got.state_dict().items())
    assert changed_entries(method.client, snapshot(_pp({"defenders": 2}).client))  # it did train


def test_pp_ssim_distance_is_one_minus_torchmetrics_ssim_and_mse_is_the_pixel_mse():
    x, recon = images(6, seed=1), images(6, seed=2)
    recon = 0.5 * x + 0.5 * recon
    ssim_method, mse_method = _pp({"distance": "ssim"}), _pp({"distance": "mse"})
    assert ssim_method.distance(x, recon).item() == pytest.approx(1 - tm_ssim(recon, x, data_range=1.0).item(), abs=1e-5)
    assert ssim_method.distance(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert mse_method.distance(x, recon).item() == pytest.approx(((x - recon) ** 2).mean().item(), rel=1e-6)


# ------------------------------------------------------------------ adv_recon


TRAIN_POOL, TRAIN_BATCH = 400, 16


def train_split(n: int = TRAIN_POOL, seed: int = 0, image=IMAGE) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    return TensorSplit(torch.randint(0, 256, (n, *image), generator=g, dtype=torch.uint8), {})


def _adv(params: dict | None = None, lr: float = 1e-3, seed: int = 0, train: TensorSplit | None = None):
    method = make("adv_recon", params, lr=lr, seed=seed)
    method.start_training(train if train is not None else train_split(), TRAIN_BATCH)
    return method.train()


def _share_batch(method, want: bool, n: int = 12, seed: int = 0):
    """n examples that all belong to X2 (want=True) or all to X1."""
    pool = images(400, seed=seed + 50)
    chosen = pool[method.adversary_share(pool) == want][:n]
    assert len(chosen) == n
    g = torch.Generator().manual_seed(seed)
    return chosen, torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)


def test_adv_recon_share_is_a_deterministic_property_of_each_example():
    method = _adv()
    x = images(64)
    mask = method.adversary_share(x)
    assert 0 < mask.sum() < 64
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    assert torch.equal(method.adversary_share(x[perm]), mask[perm])
    others = images(20, seed=9)
    assert torch.equal(method.adversary_share(torch.cat([others, x]))[20:], mask)
    assert torch.equal(torch.cat([method.adversary_share(x[i:i + 1]) for i in range(64)]), mask)
    assert torch.equal(method.adversary_share(x.contiguous(memory_format=torch.channels_last)), mask)
    assert torch.equal(_adv(seed=5).adversary_share(x), mask)  # not tied to the trial seed


@pytest.mark.parametrize("fraction", [0.2, 0.5])
@pytest.mark.parametrize("sparse", [False, True])
def test_adv_recon_realised_share_is_the_adversary_fraction(fraction, sparse):
    method = _adv({"adversary_fraction": fraction})
    x = images(4000, seed=11, image=(1, 16, 16))
    if sparse:  # MNIST-like: mostly black pixels
        x = x * (torch.rand(x.shape, generator=torch.Generator().manual_seed(12)) < 0.1)
    assert method.adversary_share(x).float().mean().item() == pytest.approx(fraction, abs=0.03)


def test_adv_recon_decoder_batches_are_full_size_and_come_only_from_x2(monkeypatch):
    """Whatever the trainer's batch holds (here only X1 examples), the decoder steps on a
    full train-size batch of X2 examples of the train split, and one pass covers X2 once."""
    train = train_split(seed=4)
    method = _adv({"adversary_fraction": 0.5}, train=train)
    x2_pool = train.images[method.adversary_share(train.images_at(slice(None)))]
    per_pass = len(x2_pool) // TRAIN_BATCH
    assert per_pass >= 3
    seen = []
    monkeypatch.setattr(method, "adversary_update", lambda x2: seen.append(x2.clone()) or 0.0)
    x1_only = _share_batch(method, want=False, n=6)
    for _ in range(per_pass):
        method.train_step(*x1_only)
    assert [len(x2) for x2 in seen] == [TRAIN_BATCH] * per_pass  # not the 0 X2 examples of the batch
    drawn = torch.cat(seen)
    assert method.adversary_share(drawn).all()
    pool_bytes = {bytes(image.flatten().tolist()) for image in x2_pool}
    drawn_bytes = [bytes((image * 255).round().to(torch.uint8).flatten().tolist()) for image in drawn]
    assert set(drawn_bytes) <= pool_bytes and len(set(drawn_bytes)) == len(drawn_bytes)  # no repeat within a pass


def test_adv_recon_without_its_train_split_refuses_to_train():
    method = make("adv_recon").train()
    with pytest.raises(RuntimeError, match="start_training"):
        method.train_step(*batch())


@pytest.mark.parametrize("params", [{}, {"mu1": 1.0}])
def test_adv_recon_x2_batch_trains_only_the_decoder(params):
    method = _adv(params)
    model_before = {name: snapshot(getattr(method, name)) for name in ("client", "server")}
    decoder_before = snapshot(method.decoder)
    losses = method.train_step(*_share_batch(method, want=True))
    assert losses["task_loss"] == 0.0 and losses["decoder_mse"] > 0
    for name in ("client", "server"):  # parameters and batch-norm statistics
        assert changed_entries(getattr(method, name), model_before[name]) == set()
    assert changed_entries(method.decoder, decoder_before) & param_names(method.decoder)
    assert all(p.grad is None for p in method.client.parameters())


@pytest.mark.parametrize("params", [{}, {"mu1": 1.0}])
def test_adv_recon_protector_update_leaves_the_decoder_and_discriminator_untouched(params):
    method = _adv(params)
    adversary = [method.decoder] + ([method.discriminator] if method.discriminator is not None else [])
    before = [snapshot(m) for m in adversary]
    client_before = snapshot(method.client)
    x1, y1, _ = _share_batch(method, want=False)
    task_loss = method.protector_update(x1, y1)
    assert task_loss > 0
    for module, saved in zip(adversary, before, strict=True):
        assert changed_entries(module, saved) == set()  # parameters and batch-norm statistics
        assert all(p.grad is None for p in module.parameters())
    changed = changed_entries(method.client, client_before)
    assert changed & param_names(method.client) and changed - param_names(method.client)  # weights and BN stats


def test_adv_recon_mixed_batch_gradients_use_each_share_only(monkeypatch):
    method = _adv({"lambda1": 2.0}, lr=0.0)
    x, y, s = batch(32)
    share = method.adversary_share(x)
    assert 0 < share.sum() < 32
    x2 = _share_batch(method, want=True, n=TRAIN_BATCH, seed=3)[0]
    monkeypatch.setattr(method, "decoder_batch", lambda: x2)
    method.train_step(x, y, s)
    x1, y1 = x[~share], y[~share]
    with keeping_buffers(method.client, method.decoder):
        with torch.no_grad():
            z2 = method.client(x2)
        decoder_expected = grads(F.mse_loss(method.decoder(z2), x2), method.decoder)
        with torch.no_grad():
            z_all = method.client(x)
        decoder_all = grads(F.mse_loss(method.decoder(z_all), x), method.decoder)
        z1 = method.client(x1)
        encoder_loss = F.cross_entropy(method.server(z1), y1) - 2.0 * F.mse_loss(method.decoder(z1), x1)
        client_expected = grads(encoder_loss, method.client)
        z_all = method.client(x)
        client_all = grads(F.cross_entropy(method.server(z_all), y) - 2.0 * F.mse_loss(method.decoder(z_all), x), method.client)
    decoder_got = [p.grad for p in method.decoder.parameters()]
    client_got = [p.grad for p in method.client.parameters()]
    assert close(decoder_got, decoder_expected) and not close(decoder_got, decoder_all)
    assert close(client_got, client_expected) and not close(client_got, client_all)


def test_adv_recon_perceptual_loss_sees_all_five_vgg16_stages_at_64_px_or_more(monkeypatch):
    """With a randomly initialised VGG16 (its ImageNet weights cannot be downloaded here):
    28 px images reach g at 64 px, and the loss is the mean of the five stages' MSEs."""
    from torchvision.models import vgg16

    import trainables.methods.adv_recon as adv_module

    torch.manual_seed(0)
    random_g = adv_module.PerceptualStages(vgg16(weights=None).features)
    monkeypatch.setattr(adv_module, "perceptual_network", lambda: random_g)
    method = make("adv_recon", {"lambda2": 1.0}, image=(1, 28, 28))
    x, reconstruction = images(2, seed=1, image=(1, 28, 28)), images(2, seed=2, image=(1, 28, 28))
    outputs = method.perceptual_features(x)
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]
    per_stage = [F.mse_loss(a, b) for a, b in zip(method.perceptual_features(reconstruction), outputs, strict=True)]
    assert all(loss > 0 for loss in per_stage)
    assert method.perceptual_loss(reconstruction, x).item() == pytest.approx(torch.stack(per_stage).mean().item(), rel=1e-5)
    big = images(1, seed=3, image=(1, 80, 96))
    assert tuple(method.perceptual_features(big)[0].shape[-2:]) == (80, 96)  # 64 px or more: not resized


@pytest.mark.parametrize("params", [{"lambda2": 1.0}, {"mu2": 0.5}])
def test_adv_recon_perceptual_loss_without_vgg16_weights_is_an_input_error(tmp_path, monkeypatch, params):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    with pytest.raises(InputError, match=r"params\.lambda2/params\.mu2.*vgg16-397923af\.pth"):
        _adv(params)
    _adv({"lambda2": 0.0, "mu2": 0.0})  # the same machine runs the pixel-only variant


# ------------------------------------------------------------------ deep_obfuscator

EXPECTED_CHANGE = {
    "pretrain": set(DO_MODULES),
    "defend_reconstruction": {"obfuscator"},
    "defend_leakage": {"obfuscator"},
    "attack": {"reconstructor", "adversary_classifier"},
    "classifier": {"classifier"},
}


def _do(params: dict | None = None, lr: float = 1e-3, seed: int = 0):
    return make("deep_obfuscator", params, lr=lr, seed=seed).train()


def _force_stage(method, stage: str) -> None:
    if stage == "pretrain":
        method.pretrain_steps, count = 3, 0
    else:
        method.pretrain_steps, count = 2, 2 + ["defend_reconstruction", "defend_leakage", "attack", "classifier"].index(stage)
    method.step_count.fill_(count)
    assert method.stage() == stage


def _changed_modules(method, before: dict[str, dict[str, torch.Tensor]]) -> set[str]:
    return {name for name in DO_MODULES if changed_entries(getattr(method, name), before[name])}


@pytest.mark.parametrize("stage", list(EXPECTED_CHANGE))
def test_deep_obfuscator_each_stage_updates_only_its_own_networks(stage):
    method = _do()
    _force_stage(method, stage)
    before = {name: snapshot(getattr(method, name)) for name in DO_MODULES}
    noise = method.noise_image.clone()
    count = int(method.step_count)
    method.train_step(*batch())
    for name in DO_MODULES:
        module = getattr(method, name)
        changed = changed_entries(module, before[name])
        if name in EXPECTED_CHANGE[stage]:
            assert changed & param_names(module), name
            assert changed - param_names(module), name  # trained in train mode: BN statistics move
        else:
            assert changed == set(), name  # parameters and batch-norm statistics as they were
            assert all(p.grad is None for p in module.parameters()), name
    assert torch.equal(method.noise_image, noise)
    assert int(method.step_count) == count + 1


@pytest.mark.parametrize("stage", ["pretrain", "defend_reconstruction", "defend_leakage"])
def test_deep_obfuscator_obfuscator_gradient_is_the_stage_objective(stage):
    method = _do({"lambda1": 2.0, "lambda2": 3.0}, lr=0.0)
    _force_stage(method, stage)
    x, y, s = batch()
    method.train_step(x, y, s)
    got = [p.grad for p in method.obfuscator.parameters()]
    # ms_ssim itself is checked against torchmetrics above; at a random initialisation the
    # relu-clipped MS-SSIM terms sit near 0, where x ** beta amplifies float32 rounding, so
    # torchmetrics' own gradient would only agree to ~1e-2 here
    with keeping_buffers(*(getattr(method, name) for name in DO_MODULES)):
        z = method.obfuscator(x)
        task = F.cross_entropy(method.classifier(z), y)
        recon = method.reconstructor(z)
        ar1 = 1 - ms_ssim(recon, x)
        ar2 = 1 - ms_ssim(recon, method.noise_image.expand_as(recon))
        leak = F.cross_entropy(method.adversary_classifier(z), s)
        objectives = {
            "pretrain": task,  # no privacy term
            "defend_reconstruction": task + 3.0 * (ar2 - ar1),  # Eq. 9
            "defend_leakage": task - 2.0 * leak,  # Eq. 5
        }
        expected = {name: grads(loss, method.obfuscator) for name, loss in objectives.items()}
    assert close(got, expected[stage], atol=1e-5)
    assert all(not close(got, expected[other], atol=1e-5) for other in expected if other != stage)


def test_deep_obfuscator_cycles_stages_0_1_2_3_after_pretraining_and_never_touches_the_noise_image():
    method = _do({"pretrain_fraction": 0.2})
    assert method.stage() == "defend_reconstruction"  # no start_epoch: no pre-training
    noise = method.noise_image.clone()
    expected = ["pretrain"] * 2 + ["defend_reconstruction", "defend_leakage", "attack", "classifier"] * 2
    seen, changed = [], []
    for i in range(10):
        method.start_epoch(epoch=i // 5, epochs=2, steps_per_epoch=5)  # 20% of 10 steps = 2
        assert method.pretrain_steps == 2
        seen.append(method.stage())
        before = {name: snapshot(getattr(method, name)) for name in DO_MODULES}
        method.train_step(*batch(seed=i))
        changed.append(_changed_modules(method, before))
        assert torch.equal(method.noise_image, noise)
    assert seen == expected
    assert changed == [EXPECTED_CHANGE[stage] for stage in expected]
    no_pretrain = _do({"pretrain_fraction": 0.0})
    no_pretrain.start_epoch(epoch=0, epochs=2, steps_per_epoch=5)
    assert no_pretrain.stage() == "defend_reconstruction"


def test_deep_obfuscator_noise_image_and_step_count_survive_a_state_dict_round_trip():
    method = _do()
    noise = method.noise_image
    assert noise.shape == (1, *IMAGE) and noise.min() >= 0 and noise.max() <= 1
    assert noise.mean().item() == pytest.approx(0.5, abs=0.05) and noise.std().item() == pytest.approx(0.25, abs=0.05)
    method.start_epoch(epoch=0, epochs=1, steps_per_epoch=5)  # 1 pre-training step
    for i in range(3):
        method.train_step(*batch(seed=i))
    state = method.state_dict()
    assert int(state["step_count"]) == 3 and torch.equal(state["noise_image"], noise)

    resumed = _do(seed=1)
    assert not torch.equal(resumed.noise_image, noise)  # drawn from the trial's seeded RNG
    resumed.load_state_dict(state)
    resumed.start_epoch(epoch=0, epochs=1, steps_per_epoch=5)
    assert torch.equal(resumed.noise_image, noise) and int(resumed.step_count) == 3
    assert resumed.stage() == method.stage() == "attack"  # (3 - 1) mod 4 = 2
    before = {name: snapshot(getattr(resumed, name)) for name in DO_MODULES}
    resumed.train_step(*batch(seed=3))
    assert _changed_modules(resumed, before) == EXPECTED_CHANGE["attack"]
    assert resumed.stage() == "classifier" and torch.equal(resumed.noise_image, noise)
