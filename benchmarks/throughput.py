"""Training throughput of a Noisy ARL step: our on-device batches vs a plain PyTorch loop.

    python benchmarks/throughput.py [--steps 40] [--device cpu|cuda]

Both loops run the same method (`noisy_arl`: client, server and proxy adversary, three
Adam optimisers) on the same data; they differ only in how batches are produced:
- privsweep: the split lives on the device as uint8 (`TensorSplit`); a batch is one index
  select and one conversion to float.
- plain: `DataLoader(TensorDataset(float images, labels), shuffle=True)`, per-sample
  indexing and collation, then `.to(device)`, as in most papers' scripts.
Prints images/s for both and their ratio, measured in one run, for small_cnn on 28x28
(Fashion-MNIST shapes) and resnet18 on 32x32 (CIFAR-10 shapes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainables.data.base import Split
from trainables.data.batches import TensorSplit
from trainables.methods import MethodContext
from trainables.methods.noisy_arl import NoisyARL, NoisyARLParams
from trainables.models import SplitArchitecture

CASES = (("small_cnn", "2", (1, 28, 28), 128), ("resnet18", "2", (3, 32, 32), 128))


def make_split(shape: tuple[int, int, int], n: int) -> Split:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    return Split(images, {"task": rng.integers(0, 2, n), "private": rng.integers(0, 10, n)})


def build_method(backbone: str, split: str, shape, device) -> NoisyARL:
    torch.manual_seed(0)
    arch = SplitArchitecture(backbone, split, shape)
    return NoisyARL(MethodContext(arch, 2, 10, 1e-3), NoisyARLParams(sigma=1.0)).to(device)


def timed(steps: int, batches, method: NoisyARL, device) -> float:
    iterator = iter(batches)
    for _ in range(3):  # warm-up
        method.train_step(*next(iterator))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        method.train_step(*next(iterator))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def endless(make_epoch):
    while True:
        yield from make_epoch()


def ours(split: Split, batch: int, device):
    data = TensorSplit.from_split(split, ["task", "private"], device)
    generator = torch.Generator().manual_seed(0)
    return endless(lambda: data.batches(batch, ("task", "private"), generator))


def plain(split: Split, batch: int, device):
    dataset = TensorDataset(
        torch.from_numpy(split.images).float() / 255,
        torch.from_numpy(split.attributes["task"]),
        torch.from_numpy(split.attributes["private"]),
    )
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    return endless(lambda: ((x.to(device), t.to(device), p.to(device)) for x, t, p in loader))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.steps} timed steps per loop")
    print("| backbone | input | batch | privsweep img/s | plain img/s | ratio |")
    print("|---|---|---|---|---|---|")
    for backbone, split_name, shape, batch in CASES:
        steps = args.steps if backbone == "small_cnn" or device.type == "cuda" else max(4, args.steps // 8)
        split = make_split(shape, batch * (steps + 4))
        rates = {}
        for name, make in (("privsweep", ours), ("plain", plain)):
            method = build_method(backbone, split_name, shape, device)
            rates[name] = steps * batch / timed(steps, make(split, batch, device), method, device)
        print(f"| {backbone} | {'x'.join(map(str, shape))} | {batch} | {rates['privsweep']:.0f} | {rates['plain']:.0f} | {rates['privsweep'] / rates['plain']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
