"""UnSplit knows the client's architecture only: it never queries the client, and where the
architecture has nothing to learn (the image released as it is) it recovers the image."""

from __future__ import annotations

import torch

from trainables.attacks.attackers.unsplit import UnSplit
from trainables.attacks.base import AttackContext, AttackData
from trainables.attacks.releases import ReleasedSplit
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.methods import METHODS, MethodContext
from trainables.models import INPUT_SPLIT, SplitArchitecture

SHAPE = (1, 16, 16)


def split_of(n: int, seed: int) -> TensorSplit:
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, *SHAPE, dtype=torch.uint8)
    images[:, :, 4:12, 4:12] = torch.randint(100, 256, (n, 1, 1, 1), generator=generator, dtype=torch.uint8)  # a square each
    labels = torch.zeros(n, dtype=torch.long)
    return TensorSplit(images, labels, labels)


def frozen(method: str, split: str, **params):
    torch.manual_seed(0)
    cls = METHODS[method]
    arch = SplitArchitecture("small_cnn", split, SHAPE, {})
    return cls(MethodContext(arch, 2, 2, 1e-3), cls.Params(**params)).eval().requires_grad_(False)


def attack(method, spy=lambda method: None, **whitebox) -> tuple[UnSplit, AttackData]:
    """UnSplit fitted and run on the test split, `spy(method)` called once the suite's own
    releases of the test split exist (those every attacker is handed)."""
    data = AttackData(split_of(8, 1), split_of(8, 2), split_of(8, 3), (2, 2))
    test = ReleasedSplit(method.release_parts(), data.test, 8)
    spy(method)
    unsplit = UnSplit(AttackContext(method, AttackConfig(whitebox={"images": 8, "steps": 80, **whitebox}), data.classes))
    unsplit.fit(data, {})
    unsplit.test_records(data, test)
    return unsplit, data


def test_it_never_queries_the_client_beyond_the_releases_it_observes():
    released: list[int] = []

    def spy(method):
        original = method.release
        method.release = lambda x: released.append(len(x)) or original(x)

        def refuse(*_):
            raise AssertionError("UnSplit queried the client")

        method.release_for_inversion = refuse
        method.serve = refuse

    attack(frozen("none", "2"), spy)
    assert released == [8]  # the 8 test images' observed releases, nothing else


def test_where_the_architecture_has_no_weights_it_recovers_the_released_image():
    method = frozen("input_noise", INPUT_SPLIT, sigma=0.0)  # the image itself is released
    unsplit, data = attack(method, tv=[0.0])
    originals = data.test.images_at(slice(0, 8))
    assert (unsplit.reconstructions - originals).pow(2).mean().item() < 1e-3
