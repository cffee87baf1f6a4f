"""Training throughput of a Noisy ARL step: our on-device batches vs a plain PyTorch loop.

    python benchmarks/throughput.py [--steps 40] [--device cpu|cuda]

All loops run the same method (`noisy_arl`: client, server and proxy adversary, three
Adam optimisers, same initial weights) on the same data:
- plain: `DataLoader(TensorDataset(float images, labels), shuffle=True)`, per-sample
  indexing and collation, then `.to(device)`, default memory layout, as in most papers'
  scripts.
- privsweep: the trial engine's loop: the split lives on the device as uint8
  (`TensorSplit`), a batch is one index select and one conversion to float, and batches
  and networks are channels-last (`train.precision: fp32`, the default).
- privsweep bf16: the same with `train.precision: bf16` (autocast).
Prints images/s for each and the ratios to plain, measured in one run, for small_cnn on
28x28 (Fashion-MNIST shapes) and resnet18 on 32x32 (CIFAR-10 shapes).
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


def build_method(backbone: str, split: str, shape, device, channels_last: bool) -> NoisyARL:
    torch.manual_seed(0)
    arch = SplitArchitecture(backbone, split, shape)
    method = NoisyARL(MethodContext(arch, 2, 10, 1e-3), NoisyARLParams(sigma=1.0))
    return method.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def timed(steps: int, batches, method: NoisyARL, device, bf16: bool) -> float:
    iterator = iter(batches)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            method.train_step(*next(iterator))

    for _ in range(3):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def endless(make_epoch):
    while True:
        yield from make_epoch()


def ours(split: Split, batch: int, device):
    data = TensorSplit.from_split(split, "task", "private", device)
    generator = torch.Generator().manual_seed(0)
    return endless(lambda: data.batches(batch, generator))


def plain(split: Split, batch: int, device):
    dataset = TensorDataset(
        torch.from_numpy(split.images).float() / 255,
        torch.from_numpy(split.attributes["task"]),
        torch.from_numpy(split.attributes["private"]),
    )
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    return endless(lambda: ((x.to(device), t.to(device), p.to(device)) for x, t, p in loader))


LOOPS = (("plain", plain, False, False), ("privsweep", ours, True, False), ("bf16", ours, True, True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.steps} timed steps per loop")
    print("| backbone | input | batch | plain img/s | privsweep img/s | ratio | privsweep bf16 img/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for backbone, split_name, shape, batch in CASES:
        steps = args.steps if backbone == "small_cnn" or device.type == "cuda" else max(4, args.steps // 8)
        split = make_split(shape, batch * (steps + 4))
        rates = {}
        for name, make, optimised, bf16 in LOOPS:
            method = build_method(backbone, split_name, shape, device, channels_last=optimised)
            rates[name] = steps * batch / timed(steps, make(split, batch, device), method, device, bf16)
        base = rates["plain"]
        print(f"| {backbone} | {'x'.join(map(str, shape))} | {batch} | {base:.0f} | "
              f"{rates['privsweep']:.0f} | {rates['privsweep'] / base:.2f} | {rates['bf16']:.0f} | {rates['bf16'] / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
