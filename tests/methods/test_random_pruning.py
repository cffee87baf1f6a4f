"""Mechanisms of `random_pruning` (a random channel mask per input and call), on small_cnn
and 16x16 RGB inputs. Its release-ratio hook is covered in `test_release_ratios.py`."""

from __future__ import annotations

import pytest
import torch

from .helpers import make_3x4 as make
from .helpers import rand_batch_3x4 as batch


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.75, 0.9])
def test_random_pruning_keeps_exactly_round_one_minus_r_channels(ratio):
    method = make("random_pruning", {"pruning_ratio": ratio}).eval()
    channels = method.ctx.arch.z_shape[0]
    features = torch.rand(16, channels, 4, 4) + 0.1  # strictly positive: a zero means pruned
    z = method.obfuscate(features)
    kept = (z != 0).any(dim=(2, 3))
    assert (kept.sum(dim=1) == round((1 - ratio) * channels)).all()
    # whole channels are kept or zeroed, and kept ones are not rescaled
    assert torch.equal(z[kept], features[kept])
    assert (z[~kept] == 0).all()



def test_random_pruning_draws_a_new_mask_per_input_and_per_call():
    method = make("random_pruning", {"pruning_ratio": 0.5}).eval()
    channels = method.ctx.arch.z_shape[0]
    features = torch.rand(8, channels, 4, 4) + 0.1
    same = features[:1].expand(8, -1, -1, -1).contiguous()
    masks = (method.obfuscate(same) != 0).any(dim=(2, 3))
    assert len({tuple(m.tolist()) for m in masks}) > 1  # per input
    first = (method.obfuscate(features) != 0).any(dim=(2, 3))
    second = (method.obfuscate(features) != 0).any(dim=(2, 3))
    assert not torch.equal(first, second)  # per call



@pytest.mark.parametrize("mode", ["train", "eval"])
def test_random_pruning_release_zeroes_whole_channels_of_the_client_features(mode):
    ratio = 0.5
    method = getattr(make("random_pruning", {"pruning_ratio": ratio}), mode)()
    x, _, _ = batch()
    with torch.no_grad():
        features = method.client(x)
        z = method.release(x)
    channels = features.shape[1]
    for zi, fi in zip(z, features, strict=True):
        equal = (zi == fi).all(dim=(1, 2))
        zero = (zi == 0).all(dim=(1, 2))
        assert (equal | zero).all()
        assert (zero & (fi != 0).any(dim=(1, 2))).sum() <= channels - round((1 - ratio) * channels)
        assert ((zi != 0).any(dim=(1, 2))).sum() <= round((1 - ratio) * channels)
