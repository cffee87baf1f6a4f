"""Train the attack suite on a frozen defense and evaluate everything on the test split.

The evaluation protocol of DESIGN.md: the obfuscator is frozen; the leakage attackers,
the reconstruction decoders and a retrained utility model are trained on released z of
the attacker split (the train split: the strong attacker who knows the training data) and
evaluated on the test split. Every batch is released afresh, so defense randomness
(noise, random pruning) is redrawn at attack time and no attacker sees noise-free z.
All attackers train together on the same stream of released batches (one release per
batch, shared), each with its own Adam optimiser.

Attacker model selection (`attacks.selection: val_best`, the default): after every attack
epoch each attacker is scored on releases of the validation split (held out of the train
split, never trained on by the defense or the attackers: accuracy for classifiers, -MSE for
decoders) and the weights of its best epoch are the ones evaluated on test. Why: an attacker's
test accuracy swings by several points from one epoch to the next (Fashion-MNIST, raw images:
0.80 -> 0.84 -> 0.80 -> 0.84 over epochs 6-9), so the last epoch understates the attacker
as often as not; picking the epoch on held-out attacker-side data is what an attacker would
do, and touches no test data. `last` keeps the final epoch; so does an empty validation split.

`attacks.release_ratios`: a method with an inference-time pruning ratio (`at_release_ratio`)
is also attacked at each listed ratio R, frozen as trained (no defense retraining): a fresh
suite (same seed) is trained and evaluated on releases at R, and its metrics are added with
the suffix `:R<r>` (`privacy/leak_acc:R0.5`). The unsuffixed metrics stay those at the
trained ratio. A method without the knob and release_ratios set is an input error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from trainables.attacks.leakage import LEAKAGE_ATTACKERS
from trainables.config import AttackConfig
from trainables.data.batches import TensorSplit
from trainables.errors import InputError
from trainables.methods.base import Method
from trainables.metrics import HIGHER_IS_BETTER, ImageSimilarity, matthews
from trainables.models.decoders import DECODERS


@dataclass
class Attacker:
    net: nn.Module
    target: str  # "private", "task" or "image"
    optimizer: torch.optim.Optimizer = field(init=False)
    lr: float = 1e-3

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)

    def loss(self, z: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.net(z)
        if self.target == "image":
            return F.mse_loss(out, targets["image"])
        return F.cross_entropy(out, targets[self.target])


@dataclass
class AttackReport:
    metrics: dict[str, float]
    originals: torch.Tensor  # gallery images from the test split
    reconstructions: torch.Tensor  # the strongest decoder's reconstructions of them


def check_attack_names(cfg: AttackConfig) -> None:
    for field_name, registry in (("leakage", LEAKAGE_ATTACKERS), ("reconstruction", DECODERS)):
        unknown = sorted(set(getattr(cfg, field_name)) - set(registry))
        if unknown:
            raise InputError(f"attacks.{field_name}: unknown attacker(s) {unknown}; choose from {sorted(registry)}.")


def build_attackers(method: Method, cfg: AttackConfig, task_classes: int, private_classes: int) -> dict[str, Attacker]:
    check_attack_names(cfg)
    arch = method.ctx.arch
    attackers = {f"leak/{name}": Attacker(LEAKAGE_ATTACKERS[name](arch, private_classes), "private", cfg.lr) for name in cfg.leakage}
    attackers.update(
        {f"recon/{name}": Attacker(DECODERS[name](arch.z_shape, arch.input_shape), "image", cfg.lr) for name in cfg.reconstruction}
    )
    attackers["utility/retrained"] = Attacker(arch.server(task_classes), "task", cfg.lr)
    return attackers


def _targets(x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"image": x, "task": y_task, "private": y_private}


def released_batches(
    release: Callable[[torch.Tensor], torch.Tensor],
    data: TensorSplit,
    names: tuple[str, str],
    batch_size: int,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """(z, targets) per batch of `data`, each batch released afresh without autograd."""
    for x, y_task, y_private in data.batches(batch_size, names, generator):
        with torch.no_grad():
            z = release(x)
        yield z, _targets(x, y_task, y_private)


def train_attackers(
    release: Callable[[torch.Tensor], torch.Tensor],
    attackers: dict[str, Attacker],
    data: TensorSplit,
    names: tuple[str, str],
    cfg: AttackConfig,
    generator: torch.Generator,
    selection: TensorSplit | None = None,
) -> dict[str, int]:
    """Train every attacker for `cfg.epochs`; with a non-empty `selection` split, leave each
    at the weights of its best-scoring epoch. Returns each attacker's kept epoch (1-based)."""
    best = {name: _Snapshot(cfg.epochs) for name in attackers}
    selecting = selection is not None and len(selection) > 0
    steps = cfg.epochs * data.num_batches(cfg.batch_size)
    with tqdm(total=steps, desc="attack: train", leave=False, disable=None) as bar:
        for epoch in range(1, cfg.epochs + 1):
            for attacker in attackers.values():
                attacker.net.train()
            for z, targets in released_batches(release, data, names, cfg.batch_size, generator):
                for attacker in attackers.values():
                    attacker.optimizer.zero_grad(set_to_none=True)
                    attacker.loss(z, targets).backward()
                    attacker.optimizer.step()
                bar.update()
            if selecting:
                for name, score in selection_scores(release, attackers, selection, names, cfg.batch_size).items():
                    best[name].offer(epoch, score, attackers[name].net)
    if selecting:
        for name, snapshot in best.items():
            snapshot.restore(attackers[name].net)
    return {name: snapshot.epoch for name, snapshot in best.items()}


class _Snapshot:
    """The best-scoring epoch's weights of one attacker (a copy, off the autograd graph)."""

    def __init__(self, last_epoch: int):
        self.epoch, self.score, self.state = last_epoch, float("-inf"), None

    def offer(self, epoch: int, score: float, net: nn.Module) -> None:
        if score > self.score:
            self.epoch, self.score = epoch, score
            self.state = {key: value.detach().clone() for key, value in net.state_dict().items()}

    def restore(self, net: nn.Module) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)


@torch.no_grad()
def selection_scores(
    release: Callable[[torch.Tensor], torch.Tensor],
    attackers: dict[str, Attacker],
    selection: TensorSplit,
    names: tuple[str, str],
    batch_size: int,
) -> dict[str, float]:
    """Each attacker's score on releases of the selection split (higher is better):
    accuracy for classifiers, minus the mean squared error for decoders."""
    for attacker in attackers.values():
        attacker.net.eval()
    totals = dict.fromkeys(attackers, 0.0)
    for z, targets in released_batches(release, selection, names, batch_size):
        for name, attacker in attackers.items():
            out = attacker.net(z)
            if attacker.target == "image":
                totals[name] -= F.mse_loss(out, targets["image"], reduction="sum").item() / targets["image"][0].numel()
            else:
                totals[name] += (out.argmax(1) == targets[attacker.target]).sum().item()
    return {name: total / len(selection) for name, total in totals.items()}


@torch.no_grad()
def evaluate(
    method: Method,
    release: Callable[[torch.Tensor], torch.Tensor],
    attackers: dict[str, Attacker],
    test: TensorSplit,
    names: tuple[str, str],
    task_classes: int,
    batch_size: int,
) -> tuple[dict[str, float], dict[str, ImageSimilarity]]:
    for attacker in attackers.values():
        attacker.net.eval()
    correct = {name: 0 for name, a in attackers.items() if a.target != "image"}
    similarity = {name: ImageSimilarity(tuple(test.images.shape[1:]), test.images.device) for name, a in attackers.items() if a.target == "image"}
    deployed_preds, task_labels = [], []
    batches = released_batches(release, test, names, batch_size)
    for z, targets in tqdm(batches, total=test.num_batches(batch_size), desc="attack: test", leave=False, disable=None):
        deployed_preds.append(method.serve(z).argmax(1))
        task_labels.append(targets["task"])
        for name, attacker in attackers.items():
            out = attacker.net(z)
            if attacker.target == "image":
                similarity[name].update(out.clamp(0, 1), targets["image"])
            else:
                correct[name] += (out.argmax(1) == targets[attacker.target]).sum().item()
    preds, labels = torch.cat(deployed_preds), torch.cat(task_labels)
    metrics = {
        "utility/acc": (preds == labels).float().mean().item(),
        "utility/mcc": matthews(preds, labels, task_classes),
    }
    for name, count in correct.items():
        metrics[name] = count / len(test)
    return metrics, similarity


def majority_rate(labels: torch.Tensor) -> float:
    return torch.bincount(labels).max().item() / len(labels)


def summarise(
    raw: dict[str, float], similarity: dict[str, ImageSimilarity], task: torch.Tensor, private: torch.Tensor
) -> tuple[dict[str, float], str]:
    """The DESIGN.md metric keys; returns them and the decoder with the best SSIM."""
    metrics = {"utility/acc": raw["utility/acc"], "utility/mcc": raw["utility/mcc"], "utility/acc_retrained": raw["utility/retrained"]}
    leak = {name.removeprefix("leak/"): value for name, value in raw.items() if name.startswith("leak/")}
    metrics.update({f"privacy/leak_acc/{name}": value for name, value in leak.items()})
    metrics["privacy/leak_acc"] = max(leak.values())
    metrics["privacy/leak_chance"] = majority_rate(private)
    metrics["utility/chance"] = majority_rate(task)
    metrics["privacy/delta"] = metrics["utility/acc"] - metrics["privacy/leak_acc"]
    per_decoder = {name.removeprefix("recon/"): sim.compute() for name, sim in similarity.items()}
    for metric, higher in HIGHER_IS_BETTER.items():
        values = {decoder: v[metric] for decoder, v in per_decoder.items() if metric in v}
        if not values:
            continue
        metrics.update({f"recon/{metric}/{decoder}": value for decoder, value in values.items()})
        metrics[f"recon/{metric}"] = max(values.values()) if higher else min(values.values())
    strongest = max(per_decoder, key=lambda d: per_decoder[d].get("ssim", float("-inf")))
    return metrics, strongest


def ratio_suffix(ratio: float) -> str:
    return f":R{ratio:g}"


def check_release_ratios(method_cls: type[Method], cfg: AttackConfig) -> None:
    """`attacks.release_ratios` is only valid for a method with an inference-time ratio."""
    if not cfg.release_ratios:
        return
    bad = [r for r in cfg.release_ratios if not 0 <= r < 1]
    if bad:
        raise InputError(f"attacks.release_ratios: pruning ratios must lie in [0, 1); got {bad}.")
    if not method_cls.supports_release_ratio():
        from trainables.methods import METHODS

        able = sorted(name for name, cls in METHODS.items() if cls.supports_release_ratio())
        raise InputError(
            f"attacks.release_ratios: method {method_cls.__name__} has no inference-time pruning ratio, "
            f"so it cannot be released at {cfg.release_ratios}; remove attacks.release_ratios (or set it "
            f"to null), or use a method that has one: {able}."
        )


def _attack_once(
    method: Method,
    attacker_data: TensorSplit,
    test: TensorSplit,
    names: tuple[str, str],
    cfg: AttackConfig,
    classes: tuple[int, int],
    seed: int,
    selection: TensorSplit | None,
) -> tuple[dict[str, float], dict[str, Attacker], str]:
    """Train a fresh suite on `method.release` as it is now and evaluate it."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    attackers = build_attackers(method, cfg, *classes)
    for attacker in attackers.values():
        attacker.net.to(test.images.device)
    selection = selection if cfg.selection == "val_best" else None
    kept = train_attackers(method.release, attackers, attacker_data, names, cfg, generator, selection)
    raw, similarity = evaluate(method, method.release, attackers, test, names, classes[0], cfg.batch_size)
    metrics, strongest = summarise(raw, similarity, test.labels[names[0]], test.labels[names[1]])
    metrics.update({f"attack/kept_epoch/{name}": float(epoch) for name, epoch in kept.items()})
    return metrics, attackers, strongest


def run_attack_suite(
    method: Method,
    attacker_data: TensorSplit,
    test: TensorSplit,
    names: tuple[str, str],
    cfg: AttackConfig,
    classes: tuple[int, int],
    seed: int,
    selection: TensorSplit | None = None,
) -> AttackReport:
    """Freeze `method`, train the suite on `attacker_data` (keeping each attacker's best epoch
    on `selection`, see the module docstring), evaluate on `test`; again at each of
    `cfg.release_ratios` (suffixed metrics)."""
    check_release_ratios(type(method), cfg)
    method.eval()
    method.requires_grad_(False)
    metrics, attackers, strongest = _attack_once(method, attacker_data, test, names, cfg, classes, seed, selection)
    originals = test.images[: cfg.gallery].float() / 255
    with torch.no_grad():
        reconstructions = attackers[f"recon/{strongest}"].net(method.release(originals)).clamp(0, 1)
    for ratio in cfg.release_ratios or []:
        context = method.at_release_ratio(ratio)
        if context is None:
            raise InputError(f"attacks.release_ratios: {type(method).__name__} cannot be released at R={ratio}.")
        with context:
            at_ratio, _, _ = _attack_once(method, attacker_data, test, names, cfg, classes, seed, selection)
        metrics.update({f"{key}{ratio_suffix(ratio)}": value for key, value in at_ratio.items()})
    return AttackReport(metrics, originals.cpu(), reconstructions.cpu())
