"""Mechanisms of `adv_recon` (an adversarial decoder trained on the adversary's share X2 of
the data, the protector on X1). Synthetic 16x16 images keep them fast."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainables.data.batches import TensorSplit
from trainables.errors import InputError
from trainables.methods.updates import keeping_buffers

from .helpers import IMAGE, changed_entries, close, images, make, param_names, snapshot
from .helpers import loss_grads as grads
from .helpers import pixel_batch as batch

TRAIN_POOL, TRAIN_BATCH = 400, 16



def train_split(n: int = TRAIN_POOL, seed: int = 0, image=IMAGE) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    unlabelled = torch.zeros(n, dtype=torch.long)
    return TensorSplit(torch.randint(0, 256, (n, *image), generator=g, dtype=torch.uint8), unlabelled, unlabelled)



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


def test_adv_recon_decoder_learns_at_ten_times_the_encoder_rate_unless_set():
    """Dec at 10 x train.lr by default (measured in the module docstring), Enc and f at train.lr."""
    rates = {name: o.param_groups[0]["lr"] for name, o in _adv(lr=1e-3).optimizers.items()}
    assert rates == {"client": 1e-3, "server": 1e-3, "decoder": pytest.approx(1e-2)}
    assert _adv({"decoder_lr": 3e-3}).optimizers["decoder"].param_groups[0]["lr"] == 3e-3


def test_adv_recon_decoder_is_the_clients_reversal_or_the_attack_suites_mirror_decoder():
    from trainables.models.decoders import MirrorDecoder
    from trainables.models.reversed_decoder import ReversedDecoder

    assert isinstance(_adv({"decoder": "reversed"}).decoder, ReversedDecoder)
    mirror = _adv()  # the default: the one within proxy calibration's tolerance
    assert isinstance(mirror.decoder, MirrorDecoder)
    x = images(4)
    assert mirror.decoder(mirror.release(x)).shape == x.shape
    assert set(mirror.optimizers["decoder"].param_groups[0]["params"]) == set(mirror.decoder.parameters())
