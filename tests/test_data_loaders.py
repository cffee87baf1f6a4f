"""cifar10, celeba and fairface loaders on small fixtures written in the real on-disk formats:
Python-2-style CIFAR pickles, CelebA JPEGs + txt annotation files, FairFace JPEGs + CSVs.
Every load goes through `load_dataset`, so through the Arrow cache as well."""

from __future__ import annotations

import inspect
import shutil

import numpy as np
import pytest
from fixture_data import (  # noqa: I001
    CELEBA_ATTRIBUTES,
    CELEBA_FILES,
    FAIRFACE_ROWS,
    PER_BATCH,
    cifar_labels,
    write_celeba,
    write_cifar,
    write_fairface,
    write_mnist,
)

from trainables.data import DATASETS, declared_attributes, load_dataset
from trainables.data.cifar10 import LABEL_NAMES
from trainables.errors import InputError


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty dataset root; $PRIVSWEEP_DATA (so the Arrow cache) points at a sibling folder."""
    monkeypatch.setenv("PRIVSWEEP_DATA", str(tmp_path / "privsweep-data"))
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


def test_registered():
    assert {"cifar10", "celeba", "fairface"} <= set(DATASETS)


def test_every_dataset_declares_exactly_the_attributes_it_loads(root):
    """`validate` checks attributes against each module's ATTRIBUTES without reading data;
    they must be what a load of each dataset's on-disk format gives."""
    write_cifar(root, py2=False)
    write_celeba(root)
    write_fairface(root)
    shutil.copytree(write_mnist(root), root / "FashionMNIST" / "raw")  # the same IDX format
    for name in DATASETS:
        options = {"download": False} if "download" in inspect.signature(DATASETS[name]).parameters else {}
        dataset = load_dataset(name, options, root=root)
        assert sorted(declared_attributes(name)) == sorted(dataset.num_classes), name


def test_a_celeba_attribute_file_with_other_names_is_refused(root):
    folder, _ = write_celeba(root)
    path = folder / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("Pointy_Nose", "Pointed_Nose")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 2.*not CelebA's 40"):
        load_dataset("celeba", root=root)


# ---------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("py2", [True, False], ids=["py2-pickles", "py3-bytes-keys"])
def test_cifar10_loads_official_layout(root, py2):
    write_cifar(root, py2)
    ds = load_dataset("cifar10", {"download": False}, root=root)
    assert ds.train.images.shape == (5 * PER_BATCH, 3, 32, 32) and ds.train.images.dtype == np.uint8
    assert ds.test.images.shape == (PER_BATCH, 3, 32, 32)
    assert ds.num_classes == {"class": 10, "living": 2}
    train_classes = sum((cifar_labels(f"data_batch_{i}") for i in range(1, 6)), [])
    assert ds.train.attributes["class"].tolist() == train_classes
    assert ds.test.attributes["class"].tolist() == cifar_labels("test_batch")
    living = {"bird", "cat", "deer", "dog", "frog", "horse"}
    for split in (ds.train, ds.test):
        expected = [int(LABEL_NAMES[c] in living) for c in split.attributes["class"]]
        assert split.attributes["living"].tolist() == expected
    assert set(ds.train.attributes["living"].tolist()) == {0, 1}
    # data_batch_2's second image is train index PER_BATCH + 1
    assert ds.train.images[PER_BATCH + 1, :, 5, 7].tolist() == [200, 10, 30]
    assert ds.test.images[0, :, 31, 0].tolist() == [1, 2, 254]


def test_cifar10_missing_folder(root):
    with pytest.raises(InputError, match="cifar-10-batches-py") as info:
        load_dataset("cifar10", {"download": False}, root=root)
    assert str(root / "cifar-10-batches-py") in str(info.value)
    assert "cifar-10-python.tar.gz" in str(info.value)


def test_cifar10_missing_batch(root):
    (write_cifar(root) / "data_batch_3").unlink()
    with pytest.raises(InputError, match="data_batch_3"):
        load_dataset("cifar10", {"download": False}, root=root)


def test_second_load_served_from_arrow_cache(root, tmp_path):
    first = load_dataset("cifar10", {"download": False}, root=write_cifar(root).parent)
    shutil.rmtree(root / "cifar-10-batches-py")
    assert list((tmp_path / "privsweep-data" / "arrow-cache").glob("cifar10-*.train.arrow"))
    second = load_dataset("cifar10", {"download": False}, root=root)
    assert np.array_equal(first.train.images, second.train.images)
    assert np.array_equal(first.test.attributes["living"], second.test.attributes["living"])
    assert second.num_classes == first.num_classes


# ---------------------------------------------------------------- CelebA

def test_celeba_loads_official_layout(root):
    _, values = write_celeba(root)
    ds = load_dataset("celeba", {}, root=root)
    assert ds.train.images.shape == (3, 3, 64, 64) and ds.train.images.dtype == np.uint8
    assert ds.test.images.shape == (2, 3, 64, 64)
    assert ds.num_classes == dict.fromkeys(CELEBA_ATTRIBUTES, 2)
    splits = {"train": (ds.train, ["000001.jpg", "000002.jpg", "000003.jpg"]),
              "test": (ds.test, ["000005.jpg", "000006.jpg"])}
    for split, files in splits.values():
        for i, name in enumerate(files):
            for j, attribute in enumerate(CELEBA_ATTRIBUTES):
                assert split.attributes[attribute][i] == (values[name][j] == 1), (name, attribute)
            # colour survives JPEG + resize everywhere, corners included: the black bands were cropped
            colour = np.array(CELEBA_FILES[name][1])
            for y, x in ((0, 0), (0, 63), (32, 32), (63, 0), (63, 63)):
                assert np.abs(split.images[i, :, y, x].astype(int) - colour).max() <= 12, (name, y, x)
    assert ds.test.attributes["Male"].tolist() == [1, 0]


def test_celeba_options(root):
    write_celeba(root)
    ds = load_dataset("celeba", {"image_size": 32, "limit": 2}, root=root)
    assert ds.train.images.shape == (2, 3, 32, 32) and ds.test.images.shape == (2, 3, 32, 32)
    assert np.abs(ds.train.images[1, :, 16, 16].astype(int) - (40, 220, 40)).max() <= 12
    with pytest.raises(InputError, match="limit"):
        load_dataset("celeba", {"limit": 0}, root=root)


def test_celeba_missing_folder(root):
    with pytest.raises(InputError) as info:
        load_dataset("celeba", {}, root=root)
    assert str(root / "celeba") in str(info.value) and "list_attr_celeba.txt" in str(info.value)


def test_celeba_bad_attribute_value(root):
    folder, _ = write_celeba(root)
    path = folder / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    fields = lines[4].split()  # 000003.jpg's row, file line 5
    fields[3] = "0"
    lines[4] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 5"):
        load_dataset("celeba", {}, root=root)


# ---------------------------------------------------------------- FairFace

def test_fairface_loads_official_layout(root):
    write_fairface(root)
    ds = load_dataset("fairface", {}, root=root)
    assert ds.train.images.shape == (4, 3, 64, 64) and ds.train.images.dtype == np.uint8
    assert ds.test.images.shape == (3, 3, 64, 64)
    assert ds.num_classes == {"gender": 2, "race": 7, "age": 9}
    # indices: gender Female 0 / Male 1; race and age in the documented order
    assert ds.train.attributes["gender"].tolist() == [1, 0, 0, 1]
    assert ds.train.attributes["race"].tolist() == [3, 6, 2, 0]
    assert ds.train.attributes["age"].tolist() == [6, 8, 0, 3]
    assert ds.test.attributes["gender"].tolist() == [1, 0, 0]
    assert ds.test.attributes["race"].tolist() == [4, 1, 5]
    assert ds.test.attributes["age"].tolist() == [1, 7, 2]
    for split, rows in ((ds.train, FAIRFACE_ROWS[:4]), (ds.test, FAIRFACE_ROWS[4:])):
        for i, row in enumerate(rows):
            assert np.abs(split.images[i, :, 32, 32].astype(int) - row[5]).max() <= 8, row[0]
    small = load_dataset("fairface", {"image_size": 16, "limit": 1}, root=root)
    assert small.train.images.shape == (1, 3, 16, 16) and small.test.images.shape == (1, 3, 16, 16)
    assert small.test.attributes["race"].tolist() == [4]


def test_fairface_unknown_label(root):
    rows = list(FAIRFACE_ROWS)
    rows[5] = ("val/2.jpg", "60-69", "Female", "Martian", "True", (230, 30, 230))
    folder = write_fairface(root, rows)
    with pytest.raises(InputError, match="Martian") as info:
        load_dataset("fairface", {}, root=root)
    message = str(info.value)
    assert str(folder / "fairface_label_val.csv") in message and "line 3" in message and "val/2.jpg" in message


def test_fairface_missing_folder(root):
    with pytest.raises(InputError) as info:
        load_dataset("fairface", {}, root=root)
    assert str(root / "fairface") in str(info.value) and "fairface_label_train.csv" in str(info.value)
