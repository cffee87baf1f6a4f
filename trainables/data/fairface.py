"""FairFace: `gender` (2), `race` (7) and `age` (9 bins) of face crops.

Reads the official release under `<root>/fairface/`: the label files
`fairface_label_train.csv` and `fairface_label_val.csv` (columns `file,age,gender,race,
service_test`; `file` like `train/1.jpg`, relative to `<root>/fairface/`) and the images
unpacked from either image zip into `train/` and `val/`. The padding=0.25 and padding=1.25
image releases share the same label files and folder names, so either (not both) can sit
there. Only the `file`, `age`, `gender` and `race` columns are read.

Splits: train = `fairface_label_train.csv`, test = `fairface_label_val.csv` (FairFace has no
separate test set).

Class indices (fixed by the module constants below, in this order):
- gender: 0 Female, 1 Male
- race: 0 White, 1 Black, 2 Latino_Hispanic, 3 East Asian, 4 Southeast Asian, 5 Indian,
  6 Middle Eastern
- age: 0 "0-2", 1 "3-9", 2 "10-19", 3 "20-29", 4 "30-39", 5 "40-49", 6 "50-59", 7 "60-69",
  8 "more than 70" (also accepted spelled "70+")

Options: `image_size` (default 64; center square crop, a no-op for the 224x224 release, then
resize, as for CelebA) and `limit` (first `limit` rows of each CSV).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from trainables.data.base import Dataset, Split
from trainables.data.celeba import check_size_options, decode_images
from trainables.errors import InputError

FOLDER = "fairface"
TRAIN_CSV = "fairface_label_train.csv"
TEST_CSV = "fairface_label_val.csv"
GENDERS = ("Female", "Male")
RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")
AGES = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
AGE_ALIASES = {"70+": "more than 70"}
CLASSES = {"gender": GENDERS, "race": RACES, "age": AGES}
ATTRIBUTES = tuple(CLASSES)


def read_labels(path: Path, limit: int | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Image paths (relative to the fairface folder) and the class index of each attribute."""
    index = {name: {value: i for i, value in enumerate(values)} for name, values in CLASSES.items()}
    files: list[str] = []
    columns: dict[str, list[int]] = {name: [] for name in CLASSES}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = sorted({"file", *CLASSES} - set(reader.fieldnames or []))
        if missing:
            raise InputError(f"{path}: header lacks column(s) {missing}; expected file,age,gender,race,...")
        for row in reader:
            if limit is not None and len(files) >= limit:
                break
            line = reader.line_num
            for name in CLASSES:
                value = (row[name] or "").strip()
                value = AGE_ALIASES.get(value, value) if name == "age" else value
                if value not in index[name]:
                    raise InputError(
                        f"{path} line {line} ({row['file']}): unknown {name} {row[name]!r}; "
                        f"expected one of {list(CLASSES[name])}."
                    )
                columns[name].append(index[name][value])
            files.append(row["file"].strip())
    return files, {name: np.array(values, dtype=np.int64) for name, values in columns.items()}


def load(root: Path, image_size: int = 64, limit: int | None = None) -> Dataset:
    check_size_options(image_size, limit)
    folder = root / FOLDER
    missing = [name for name in (TRAIN_CSV, TEST_CSV, "train", "val") if not (folder / name).exists()]
    if missing:
        raise InputError(
            f"FairFace files {missing} not found in {folder}. Download the label CSVs "
            f"({TRAIN_CSV}, {TEST_CSV}) and an image zip (padding=0.25 or 1.25) from "
            "https://github.com/joojs/fairface, unzip the images so that "
            f"{folder / 'train'}/1.jpg exists, put the CSVs next to them, or set "
            "`dataset.root`/$PRIVSWEEP_DATA to the folder that holds fairface/."
        )
    splits = {}
    for split_name, csv_name in (("train", TRAIN_CSV), ("test", TEST_CSV)):
        files, attributes = read_labels(folder / csv_name, limit)
        images = decode_images([folder / f for f in files], image_size)
        splits[split_name] = Split(images, attributes)
    return Dataset("fairface", splits["train"], splits["test"], {k: len(v) for k, v in CLASSES.items()})
