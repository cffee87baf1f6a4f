"""FORA never pairs an image with its release: the client releases only the observed half of
the attacker split and the test split, and the auxiliary half never passes through it; where
the client is the identity its decoder learns to hand the image back."""

from __future__ import annotations

import torch

from trainables.attacks.attackers.fora import FeatureOrientedReconstruction
from trainables.attacks.base import AttackContext, AttackData
from trainables.attacks.releases import ReleasedSplit
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.methods import METHODS, MethodContext
from trainables.methods.base import ReleaseParts
from trainables.models import INPUT_SPLIT, SplitArchitecture

SHAPE = (1, 16, 16)


def split_of(n: int, seed: int, brightness: int) -> TensorSplit:
    """Squares of random size; every image's corner pixel says which split it is from."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, *SHAPE, dtype=torch.uint8)
    for i, side in enumerate(torch.randint(3, 8, (n,), generator=generator).tolist()):
        images[i, :, 8 - side : 8 + side, 8 - side : 8 + side] = 200
    images[:, :, 0, 0] = brightness
    labels = torch.zeros(n, dtype=torch.long)
    return TensorSplit(images, labels, labels)


def frozen(method: str, split: str, **params):
    torch.manual_seed(0)
    cls = METHODS[method]
    return cls(MethodContext(SplitArchitecture("small_cnn", split, SHAPE, {}), 2, 2, 1e-3), cls.Params(**params)).eval().requires_grad_(False)


def test_the_auxiliary_images_never_pass_through_the_client():
    method = frozen("none", "2")
    auxiliary, observed = split_of(32, 1, 10), split_of(32, 2, 20)  # the attacker split's two halves
    attacker = TensorSplit(*(torch.cat([getattr(auxiliary, f), getattr(observed, f)]) for f in ("images", "task", "private")))
    data = AttackData(attacker, split_of(8, 3, 30), split_of(8, 4, 40), (2, 2))
    seen: set[int] = set()
    parts = method.release_parts()
    method.release_parts = lambda: ReleaseParts(lambda x: seen.update(round(v * 255) for v in x[:, 0, 0, 0].tolist()) or parts.features(x),
                                                parts.randomize)
    method.release = lambda x: seen.update(round(v * 255) for v in x[:, 0, 0, 0].tolist()) or parts.release(x)
    fora = FeatureOrientedReconstruction(AttackContext(method, AttackConfig(epochs=2, batch_size=16), data.classes))
    fora.fit(data, {})
    fora.test_records(data, ReleasedSplit(method.release_parts(), data.test, 8))
    assert seen == {20, 40}  # the observed half and the test split; never the auxiliary half (10) or validation (30)


def test_where_the_client_is_the_identity_its_decoder_hands_the_image_back():
    method = frozen("input_noise", INPUT_SPLIT, sigma=0.0)
    data = AttackData(split_of(256, 1, 0), split_of(16, 2, 0), split_of(32, 3, 0), (2, 2))
    fora = FeatureOrientedReconstruction(AttackContext(method, AttackConfig(epochs=15, batch_size=64), data.classes))
    fora.fit(data, {})
    records = fora.test_records(data, ReleasedSplit(method.release_parts(), data.test, 16))
    assert records.similarity.compute()["ssim"] > 0.8
