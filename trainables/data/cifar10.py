"""CIFAR-10: `class` (10) and `living` (1 for bird, cat, deer, dog, frog, horse; else 0).

Reads the official python-pickle release, the layout torchvision's `CIFAR10` uses:
`<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`. Missing files
are downloaded with torchvision (`download=True`, the default) when the machine is online.

The pickles are parsed here rather than through `torchvision.datasets.CIFAR10`, because that
class md5-checks every batch file and so rejects anything but the byte-exact official
files (test fixtures, re-pickled copies). Each batch is a small dict: `data` (N, 3072) uint8,
rows holding the R, G and B 32x32 planes in turn, and `labels` (N,) ints. The release was
pickled by Python 2, so keys come back as bytes or str depending on the decoder; both are
accepted.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np

from trainables.data.base import Dataset, Split
from trainables.errors import InputError

log = logging.getLogger(__name__)

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# bird, cat, deer, dog, frog, horse
LIVING = (2, 3, 4, 5, 6, 7)
ATTRIBUTES = ("class", "living")


def living_labels(classes: np.ndarray) -> np.ndarray:
    return np.isin(classes, LIVING).astype(np.int64)


def _missing(folder: Path) -> list[str]:
    return [name for name in (*TRAIN_FILES, *TEST_FILES, META_FILE) if not (folder / name).is_file()]


def _download(root: Path) -> bool:
    """Fetch the release with torchvision; False when offline or the mirror fails."""
    try:
        import torchvision.datasets as tvd

        tvd.CIFAR10(str(root), train=True, download=True)
    except Exception as error:  # offline, proxy, a mirror down: the caller says how to fix it
        log.warning("download of CIFAR-10 into %s failed: %s", root, error)
        return False
    return True


def _unpickle(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except Exception as error:
        raise InputError(f"{path} is not a CIFAR-10 python pickle ({error}); re-download it.") from error
    if not isinstance(entry, dict):
        raise InputError(f"{path} is not a CIFAR-10 batch (expected a dict); re-download it.")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(path)
    if "data" not in entry or "labels" not in entry:
        raise InputError(f"{path} lacks the 'data'/'labels' entries of a CIFAR-10 batch; re-download it.")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise InputError(
            f"{path}: expected 'data' uint8 (N, 3072) and N labels, got {data.dtype} {data.shape} "
            f"and {len(labels)} labels; re-download it."
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(LABEL_NAMES)):
        raise InputError(f"{path}: labels outside 0..9; is this CIFAR-10? Re-download it.")
    return data.reshape(-1, 3, 32, 32), labels


def _read_split(folder: Path, names: tuple[str, ...]) -> Split:
    batches = [_read_batch(folder / name) for name in names]
    images = np.ascontiguousarray(np.concatenate([b[0] for b in batches]))
    classes = np.concatenate([b[1] for b in batches])
    return Split(images, {"class": classes, "living": living_labels(classes)})


def _check_meta(path: Path) -> None:
    names = _unpickle(path).get("label_names")
    names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names or []]
    if list(names) != list(LABEL_NAMES):
        raise InputError(f"{path}: label_names {names} are not CIFAR-10's {list(LABEL_NAMES)}.")


def load(root: Path, download: bool = True) -> Dataset:
    folder = root / FOLDER
    missing = _missing(folder)
    if missing and download and _download(root):
        missing = _missing(folder)
    if missing:
        raise InputError(
            f"CIFAR-10 files {missing} not found in {folder}"
            + (" and the download failed" if download else " (download=False)")
            + ". Download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it "
            f"in {root} (it creates {FOLDER}/), or set `dataset.root`/$PRIVSWEEP_DATA to the folder "
            f"that holds {FOLDER}/."
        )
    _check_meta(folder / META_FILE)
    train = _read_split(folder, TRAIN_FILES)
    test = _read_split(folder, TEST_FILES)
    return Dataset("cifar10", train, test, {"class": 10, "living": 2})
