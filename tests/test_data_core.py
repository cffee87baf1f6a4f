"""Fashion-MNIST (real files), Colored Fashion-MNIST, synthetic shapes, the Arrow cache and the
trial's data slices."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from trainables.data import DATASETS, load_dataset, synthetic
from trainables.data.colored_fashion_mnist import PALETTE
from trainables.data.fashion_mnist import DEBIAN_FOLDER
from trainables.data.idx import has_idx_files
from trainables.trial import DATA_SEED, prepare_data

needs_fashion_mnist = pytest.mark.skipif(
    not has_idx_files(DEBIAN_FOLDER), reason=f"Fashion-MNIST not installed in {DEBIAN_FOLDER} (apt-get install dataset-fashion-mnist)"
)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion_mnist")


@needs_fashion_mnist
def test_fashion_mnist_is_the_real_dataset(fashion):
    assert len(fashion.train) == 60000 and len(fashion.test) == 10000
    assert fashion.image_shape == (1, 28, 28)
    assert fashion.train.images.dtype == np.uint8 and fashion.test.images.dtype == np.uint8
    assert fashion.num_classes == {"class": 10, "coarse": 2}
    for split in (fashion.train, fashion.test):
        classes, coarse = split.attributes["class"], split.attributes["coarse"]
        assert set(np.unique(classes)) == set(range(10))
        assert np.array_equal(coarse, np.isin(classes, [5, 7, 8, 9]).astype(coarse.dtype))
    assert np.bincount(fashion.train.attributes["class"]).tolist() == [6000] * 10  # the balanced release
    assert np.bincount(fashion.test.attributes["class"]).tolist() == [1000] * 10
    assert fashion.train.images.max() == 255 and fashion.train.images.min() == 0


@needs_fashion_mnist
@pytest.mark.parametrize("colors", [4, 10])
def test_colored_fashion_mnist_full_correlation_colours_by_class(fashion, colors):
    colored = load_dataset("colored_fashion_mnist", {"correlation": 1.0, "colors": colors})
    assert colored.num_classes == {"class": 10, "coarse": 2, "color": colors}
    assert colored.image_shape == (3, 28, 28)
    for split, grey in ((colored.train, fashion.train), (colored.test, fashion.test)):
        color, classes = split.attributes["color"], split.attributes["class"]
        assert np.array_equal(classes, grey.attributes["class"])
        assert np.array_equal(color, classes % colors)
        # the tint multiplies the grey intensity by the colour's RGB
        expected = (grey.images.astype(np.uint16) * PALETTE[color][:, :, None, None] // 255).astype(np.uint8)
        assert np.array_equal(split.images[:500], expected[:500])


@needs_fashion_mnist
def test_colored_fashion_mnist_zero_correlation_is_independent_of_class():
    colored = load_dataset("colored_fashion_mnist", {"correlation": 0.0})
    color, classes = colored.train.attributes["color"], colored.train.attributes["class"]
    for c in range(10):
        counts = np.bincount(color[classes == c], minlength=10)
        assert (counts > 0).sum() == 10  # every colour appears with every class
        assert counts.max() / counts.sum() < 0.15  # uniform is 0.1; full correlation would be 1.0
    assert (color == classes % 10).mean() < 0.15


@needs_fashion_mnist
def test_colored_fashion_mnist_test_correlation_option():
    colored = load_dataset("colored_fashion_mnist", {"correlation": 1.0, "test_correlation": 0.0})
    assert np.array_equal(colored.train.attributes["color"], colored.train.attributes["class"] % 10)
    assert (colored.test.attributes["color"] == colored.test.attributes["class"] % 10).mean() < 0.2


def test_synthetic_is_deterministic_for_a_seed():
    a = synthetic.load(train_size=64, test_size=32, image_size=16, seed=5)
    b = synthetic.load(train_size=64, test_size=32, image_size=16, seed=5)
    c = synthetic.load(train_size=64, test_size=32, image_size=16, seed=6)
    for split in ("train", "test"):
        sa, sb, sc = getattr(a, split), getattr(b, split), getattr(c, split)
        assert np.array_equal(sa.images, sb.images)
        for name in ("shape", "color"):
            assert np.array_equal(sa.attributes[name], sb.attributes[name])
        assert not np.array_equal(sa.images, sc.images)
    assert a.train.images.shape == (64, 3, 16, 16) and a.test.images.shape == (32, 3, 16, 16)
    assert not np.array_equal(a.train.images[:32], a.test.images)  # test is not a copy of train
    assert a.num_classes == {"shape": 3, "color": 3}


def test_synthetic_colour_is_visible_in_the_pixels():
    """The private attribute really is in the image: the dominant channel is the colour's."""
    data = synthetic.load(train_size=300, test_size=10, image_size=16, seed=0)
    dominant = data.train.images.reshape(300, 3, -1).astype(np.int64).sum(axis=2).argmax(axis=1)
    expected = synthetic.COLORS.argmax(axis=1)[data.train.attributes["color"]]
    assert (dominant == expected).mean() > 0.95


@pytest.fixture
def counting_synthetic(monkeypatch, tmp_path):
    """A fresh, empty data root and a synthetic loader that counts its calls."""
    monkeypatch.setenv("PRIVSWEEP_DATA", str(tmp_path / "data"))
    calls = []
    original = DATASETS["synthetic"]

    @functools.wraps(original)
    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setitem(DATASETS, "synthetic", counting)
    return calls


def test_arrow_cache_decodes_once_and_returns_equal_arrays(counting_synthetic, tmp_path):
    options = {"train_size": 96, "test_size": 48, "image_size": 16}
    first = load_dataset("synthetic", options)
    assert len(counting_synthetic) == 1
    assert sorted((tmp_path / "data" / "arrow-cache").glob("*.arrow"))  # under $PRIVSWEEP_DATA
    second = load_dataset("synthetic", options)
    assert len(counting_synthetic) == 1  # served from the cache
    direct = synthetic.load(**options)
    for split in ("train", "test"):
        for loaded in (first, second):
            got, want = getattr(loaded, split), getattr(direct, split)
            assert got.images.dtype == np.uint8
            assert np.array_equal(got.images, want.images)
            assert got.attributes.keys() == want.attributes.keys()
            for name in want.attributes:
                assert np.array_equal(got.attributes[name], want.attributes[name])
    assert second.num_classes == direct.num_classes
    # other options are another dataset: decoded again
    load_dataset("synthetic", {**options, "seed": 1})
    assert len(counting_synthetic) == 2
    load_dataset("synthetic", {**options, "seed": 1})
    assert len(counting_synthetic) == 2


def test_arrow_cache_lives_under_privsweep_data_not_home(counting_synthetic, tmp_path):
    load_dataset("synthetic", {"train_size": 32, "test_size": 16})
    assert Path(os.environ["PRIVSWEEP_DATA"]) == tmp_path / "data"
    assert any((tmp_path / "data" / "arrow-cache").iterdir())


@pytest.fixture(scope="module")
def small_synthetic():
    return synthetic.load(train_size=200, test_size=80, image_size=8, seed=0)


def row_keys(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images}


def test_prepare_data_slices_do_not_depend_on_the_train_seed(small_synthetic):
    slices = [prepare_data(small_synthetic, tiny_config(dataset__train_size=120, dataset__test_size=50, train__seed=seed), CPU) for seed in (0, 1, 17)]
    for other in slices[1:]:
        for split in ("train", "val", "test"):
            assert torch.equal(getattr(slices[0], split).images, getattr(other, split).images)
            assert torch.equal(getattr(slices[0], split).task, getattr(other, split).task)
            assert torch.equal(getattr(slices[0], split).private, getattr(other, split).private)
    assert DATA_SEED == 0


def test_prepare_data_val_and_train_are_disjoint_slices_of_train(small_synthetic):
    data = prepare_data(small_synthetic, tiny_config(dataset__train_size=120, dataset__test_size=50), CPU)
    assert len(data.val) == 12 and len(data.train) == 108 and len(data.test) == 50  # val_fraction 0.1
    train, val, test = row_keys(data.train.images), row_keys(data.val.images), row_keys(data.test.images)
    assert len(train) == 108 and len(val) == 12  # synthetic images are all distinct
    assert not train & val
    source_train = row_keys(torch.from_numpy(small_synthetic.train.images))
    source_test = row_keys(torch.from_numpy(small_synthetic.test.images))
    assert train | val <= source_train and test <= source_test
    assert data.classes == (3, 3) and data.image_shape == (3, 8, 8)
    # labels travel with their images
    index = {row.tobytes(): i for i, row in enumerate(small_synthetic.train.images)}
    for image, shape, color in zip(data.train.images, data.train.task, data.train.private, strict=True):
        assert small_synthetic.train.attributes["shape"][index[image.numpy().tobytes()]] == shape.item()
        assert small_synthetic.train.attributes["color"][index[image.numpy().tobytes()]] == color.item()


def test_prepare_data_full_split_when_sizes_are_null(small_synthetic):
    data = prepare_data(small_synthetic, tiny_config(dataset__train_size=None, dataset__test_size=None, dataset__val_fraction=0.25), CPU)
    assert len(data.train) + len(data.val) == 200 and len(data.val) == 50
    assert len(data.test) == 80


def test_prepare_data_smaller_slice_is_a_prefix_of_the_same_shuffle(small_synthetic):
    """train_size=N takes the first N of one fixed shuffle, so a bigger slice contains a
    smaller one (sweeps at different sizes share examples)."""
    small = prepare_data(small_synthetic, tiny_config(dataset__train_size=60, dataset__val_fraction=0.0), CPU)
    large = prepare_data(small_synthetic, tiny_config(dataset__train_size=150, dataset__val_fraction=0.0), CPU)
    assert row_keys(small.train.images) <= row_keys(large.train.images)
    assert len(small.val) == 0
