"""Decoded datasets cached once as Arrow IPC files and memory-mapped on reuse.

Decoding (PNG/JPEG folders, pickled CIFAR batches, gzipped IDX) is the slow part of
loading; the cache makes every later load a zero-copy memory map.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from trainables.data.base import Dataset, Split
from trainables.durable import write_atomically

CACHE_VERSION = 1


def cache_key(name: str, options: dict) -> str:
    payload = json.dumps({"name": name, "options": options, "v": CACHE_VERSION}, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def _write_split(path: Path, split: Split) -> None:
    n, c, h, w = split.images.shape
    flat = pa.array(np.ascontiguousarray(split.images).reshape(-1), type=pa.uint8())
    columns = {"image": pa.FixedSizeListArray.from_arrays(flat, c * h * w)}
    columns.update({f"attr.{k}": pa.array(v.astype(np.int64)) for k, v in split.attributes.items()})
    table = pa.table(columns).replace_schema_metadata({"shape": json.dumps([c, h, w])})
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(n, 1))
    write_atomically(path, sink.getvalue().to_pybytes())  # concurrent trials never see a half-written cache


def _read_split(path: Path) -> Split:
    table = ipc.open_file(pa.memory_map(str(path), "r")).read_all().combine_chunks()
    c, h, w = json.loads(table.schema.metadata[b"shape"])
    images = table.column("image").chunk(0).values.to_numpy(zero_copy_only=True).reshape(-1, c, h, w)
    attributes = {
        name.removeprefix("attr."): table.column(name).to_numpy()
        for name in table.column_names
        if name.startswith("attr.")
    }
    return Split(images, attributes)


def cached(name: str, options: dict, cache_dir: Path, build: Callable[[], Dataset]) -> Dataset:
    """Return the dataset from `cache_dir`, decoding it with `build` only the first time."""
    key = cache_key(name, options)
    train_path, test_path = cache_dir / f"{key}.train.arrow", cache_dir / f"{key}.test.arrow"
    meta_path = cache_dir / f"{key}.json"
    if not (train_path.exists() and test_path.exists() and meta_path.exists()):
        dataset = build()
        cache_dir.mkdir(parents=True, exist_ok=True)
        _write_split(train_path, dataset.train)
        _write_split(test_path, dataset.test)
        write_atomically(meta_path, json.dumps({"num_classes": dataset.num_classes}).encode())  # last: it marks the cache complete
    num_classes = json.loads(meta_path.read_text())["num_classes"]
    return Dataset(name, _read_split(train_path), _read_split(test_path), num_classes)
