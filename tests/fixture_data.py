"""Dataset folders in the real on-disk formats (CIFAR-10 pickles, CelebA JPEGs + txt,
FairFace JPEGs + CSV), written by tests that cannot reach the real files."""

from __future__ import annotations

import csv
import io
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from trainables.data.cifar10 import LABEL_NAMES


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (SHORT_BINSTRING/BINSTRING), as the official release has
    them: keys, batch labels, file names and the ndarray's raw buffer."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump(path: Path, entry: dict, py2: bool) -> None:
    buffer = io.BytesIO()
    if py2:
        Py2Pickler(buffer, protocol=2).dump(entry)
    else:  # a Python 3 re-pickle of what `pickle.load(f, encoding="bytes")` returns
        pickle.dump(entry, buffer, protocol=4)
    path.write_bytes(buffer.getvalue())


PER_BATCH = 3
# (batch, index in batch, row, column) -> RGB of one marked pixel
MARKED = {("data_batch_2", 1, 5, 7): (200, 10, 30), ("test_batch", 0, 31, 0): (1, 2, 254)}


def cifar_labels(batch: str, per_batch: int = PER_BATCH) -> list[int]:
    b = 6 if batch == "test_batch" else int(batch[-1])
    return [(b * per_batch + j) % 10 for j in range(per_batch)]


def write_cifar(root: Path, py2: bool = True, per_batch: int = PER_BATCH) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        for (name, k, y, x), rgb in MARKED.items():
            if name == batch:
                for c, value in enumerate(rgb):  # channel planes R, G, B, each 32x32 row-major
                    data[k, c * 1024 + y * 32 + x] = value
        entry = {
            b"batch_label": f"{batch} fixture".encode(),
            b"labels": cifar_labels(batch, per_batch),
            b"data": data,
            b"filenames": [f"img_{batch}_{j}.png".encode() for j in range(per_batch)],
        }
        _dump(folder / batch, entry, py2)
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": [n.encode() for n in LABEL_NAMES],
        b"num_vis": 3072,
    }
    _dump(folder / "batches.meta", meta, py2)
    return folder


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
    "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
# file -> (partition, face colour); 000004 is in the validation partition
CELEBA_FILES = {
    "000001.jpg": (0, (220, 40, 40)),
    "000002.jpg": (0, (40, 220, 40)),
    "000003.jpg": (0, (40, 40, 220)),
    "000004.jpg": (1, (200, 200, 40)),
    "000005.jpg": (2, (40, 200, 200)),
    "000006.jpg": (2, (200, 40, 200)),
}


def write_celeba(root: Path, files: dict = CELEBA_FILES) -> tuple[Path, dict[str, np.ndarray]]:
    folder = root / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(1)
    values = {name: rng.choice([-1, 1], size=len(CELEBA_ATTRIBUTES)) for name in files}
    if files is CELEBA_FILES:  # the two test images get known genders
        values["000005.jpg"][CELEBA_ATTRIBUTES.index("Male")] = 1
        values["000006.jpg"][CELEBA_ATTRIBUTES.index("Male")] = -1
    for name, (_, colour) in files.items():
        pixels = np.empty((218, 178, 3), dtype=np.uint8)  # H x W of the aligned release
        pixels[:] = colour
        pixels[:20] = pixels[-20:] = (0, 0, 0)  # the rows the 178x178 centre crop drops
        Image.fromarray(pixels).save(images / name, quality=95)
    lines = [str(len(files)), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in values.items()]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = [f"{name} {part}" for name, (part, _) in files.items()]
    (folder / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return folder, values


# (file, age, gender, race, service_test, colour)
FAIRFACE_ROWS = [
    ("train/1.jpg", "50-59", "Male", "East Asian", "True", (230, 30, 30)),
    ("train/2.jpg", "more than 70", "Female", "Middle Eastern", "False", (30, 230, 30)),
    ("train/3.jpg", "0-2", "Female", "Latino_Hispanic", "True", (30, 30, 230)),
    ("train/4.jpg", "20-29", "Male", "White", "False", (230, 230, 30)),
    ("val/1.jpg", "3-9", "Male", "Southeast Asian", "False", (30, 230, 230)),
    ("val/2.jpg", "60-69", "Female", "Black", "True", (230, 30, 230)),
    ("val/3.jpg", "10-19", "Female", "Indian", "True", (128, 128, 128)),
]


def write_fairface(root: Path, rows=FAIRFACE_ROWS) -> Path:
    folder = root / "fairface"
    for split in ("train", "val"):
        (folder / split).mkdir(parents=True)
    for split, csv_name in (("train", "fairface_label_train.csv"), ("val", "fairface_label_val.csv")):
        with open(folder / csv_name, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "age", "gender", "race", "service_test"])
            writer.writerows(row[:5] for row in rows if row[0].startswith(split + "/"))
    for row in rows:
        pixels = np.empty((224, 224, 3), dtype=np.uint8)
        pixels[:] = row[5]
        Image.fromarray(pixels).save(folder / row[0], quality=95)
    return folder


def many_celeba_files(n_train: int, n_test: int) -> dict:
    rng = np.random.default_rng(2)
    parts = [0] * n_train + [2] * n_test
    return {f"{i + 1:06d}.jpg": (part, tuple(int(c) for c in rng.integers(0, 256, 3))) for i, part in enumerate(parts)}


def many_fairface_rows(n_train: int, n_test: int) -> list[tuple]:
    rng = np.random.default_rng(3)
    ages = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
    races = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"]
    rows = []
    for split, n in (("train", n_train), ("val", n_test)):
        for i in range(n):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            rows.append((f"{split}/{i + 1}.jpg", ages[i % 9], ["Female", "Male"][i % 2], races[i % 7], "True", colour))
    return rows


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> Path:
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return folder


def write_smoke_dataset(name: str, root: Path) -> bool:
    """A small folder of dataset `name` under `root` for smoke sweeps; False if none is needed."""
    writers = {
        "cifar10": lambda: write_cifar(root, per_batch=20),
        "celeba": lambda: write_celeba(root, many_celeba_files(60, 20)),
        "fairface": lambda: write_fairface(root, many_fairface_rows(60, 20)),
        "mnist": lambda: write_mnist(root),
    }
    if name not in writers:
        return False
    writers[name]()
    return True
