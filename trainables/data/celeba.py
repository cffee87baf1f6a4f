"""CelebA (aligned and cropped): the 40 binary attributes, each by its official name (0/1).

Reads torchvision's CelebA layout under `<root>/celeba/`:
- `img_align_celeba/*.jpg` (178x218 JPEGs),
- `list_attr_celeba.txt`: line 1 the image count, line 2 the 40 attribute names, then
  `filename v1 ... v40` with values 1 / -1 (whitespace separated); -1 becomes 0,
- `list_eval_partition.txt`: `filename split`, 0 = train, 1 = valid, 2 = test.

Splits: train = partition 0, test = partition 2. The official validation partition (1) is
excluded: the platform uses two splits and tunes on held-out parts of train.

Options:
- `image_size` (default 64): each image is center-cropped to a square of its shorter side
  (178x178 for the aligned release, rows 20..197) and resized to image_size x image_size
  (PIL bilinear, antialiased), the same pixels as torchvision's `CenterCrop(178)` followed by
  `Resize(image_size)` on the PIL image.
- `limit` (default None): keep only the first `limit` images of each split, in file order.

Decoding runs in a thread pool (PIL releases the GIL while decoding and resizing).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from trainables.data.base import Dataset, Split
from trainables.errors import InputError

FOLDER = "celeba"
# the 40 attribute names of list_attr_celeba.txt's second line, in its order
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)
IMAGES = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
TRAIN, VALID, TEST = 0, 1, 2


def check_size_options(image_size: int, limit: int | None) -> None:
    if not isinstance(image_size, int) or image_size < 1:
        raise InputError(f"dataset.options.image_size must be a positive integer, got {image_size!r}.")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"dataset.options.limit must be a positive integer or null, got {limit!r}.")


def decode_square(path: Path, image_size: int) -> np.ndarray:
    """One image file -> (3, image_size, image_size) uint8: center square crop, then resize."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            box = (left, top, left + side, top + side)
            rgb = img.convert("RGB").crop(box).resize((image_size, image_size), Image.Resampling.BILINEAR)
    except FileNotFoundError as error:
        raise InputError(f"image {path} listed in the labels is missing; re-extract the images.") from error
    except OSError as error:
        raise InputError(f"image {path} cannot be decoded ({error}); re-extract the images.") from error
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_images(paths: Sequence[Path], image_size: int) -> np.ndarray:
    """Decode `paths` in a thread pool into one (N, 3, image_size, image_size) uint8 array."""
    out = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)

    def fill(i: int) -> None:
        out[i] = decode_square(paths[i], image_size)

    with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 2)) as pool:
        for _ in pool.map(fill, range(len(paths))):
            pass
    return out


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError as error:
        raise InputError(f"cannot read {path} ({error}).") from error


def read_attributes(path: Path) -> tuple[list[str], dict[str, int], np.ndarray]:
    """Attribute names, filename -> row, and the (rows, 40) 0/1 int64 table."""
    lines = _lines(path)
    if len(lines) < 2:
        raise InputError(f"{path} is truncated: it needs a count line and an attribute-names line.")
    names = lines[1].split()
    if names != list(ATTRIBUTES):
        raise InputError(
            f"{path} line 2: attribute names {names[:3]}... ({len(names)}) are not CelebA's {len(ATTRIBUTES)} "
            f"({ATTRIBUTES[0]} ... {ATTRIBUTES[-1]}); re-download {ATTR_FILE}."
        )
    rows: dict[str, int] = {}
    values: list[list[int]] = []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1 or any(v not in ("1", "-1") for v in fields[1:]):
            raise InputError(
                f"{path} line {number}: expected a filename and {len(names)} values of 1/-1, got {line!r}."
            )
        rows[fields[0]] = len(values)
        values.append([v == "1" for v in fields[1:]])
    try:
        count = int(lines[0].split()[0])
    except (ValueError, IndexError) as error:
        raise InputError(f"{path} line 1: expected the image count, got {lines[0]!r}.") from error
    if count != len(values):
        raise InputError(f"{path}: line 1 says {count} images but {len(values)} are listed; re-download it.")
    table = np.array(values, dtype=np.int64).reshape(len(values), len(names))
    return names, rows, table


def read_partition(path: Path) -> list[tuple[str, int]]:
    entries = []
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise InputError(f"{path} line {number}: expected `filename 0|1|2`, got {line!r}.")
        entries.append((fields[0], int(fields[1])))
    return entries


def load(root: Path, image_size: int = 64, limit: int | None = None) -> Dataset:
    check_size_options(image_size, limit)
    folder = root / FOLDER
    needed = [folder / IMAGES, folder / ATTR_FILE, folder / PARTITION_FILE]
    missing = [p.name for p in needed if not p.exists()]
    if missing:
        raise InputError(
            f"CelebA files {missing} not found in {folder}. Download img_align_celeba.zip, "
            f"{ATTR_FILE} and {PARTITION_FILE} from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
            f"(Google Drive folder 'Img' and 'Anno'/'Eval') and unpack them into {folder} "
            f"(torchvision's CelebA layout: {folder / IMAGES}/000001.jpg ...), or set "
            "`dataset.root`/$PRIVSWEEP_DATA to the folder that holds celeba/."
        )
    names, rows, table = read_attributes(folder / ATTR_FILE)
    partition = read_partition(folder / PARTITION_FILE)
    splits = {}
    for split_name, code in (("train", TRAIN), ("test", TEST)):
        files = [name for name, part in partition if part == code]
        files = files[:limit] if limit is not None else files
        unknown = [f for f in files if f not in rows]
        if unknown:
            raise InputError(
                f"{folder / PARTITION_FILE} lists {unknown[:3]} (and {max(len(unknown) - 3, 0)} more) "
                f"that {folder / ATTR_FILE} has no attributes for; re-download both files."
            )
        index = np.array([rows[f] for f in files], dtype=np.int64)
        images = decode_images([folder / IMAGES / f for f in files], image_size)
        attributes = {name: np.ascontiguousarray(table[index, j]) for j, name in enumerate(names)}
        splits[split_name] = Split(images, attributes)
    return Dataset("celeba", splits["train"], splits["test"], dict.fromkeys(names, 2))
