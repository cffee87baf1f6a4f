"""One configuration end to end: defense training on the train split, then the attack suite.

Defense training runs the method's phases (`Method.phases`), each until its validation
signals converge or the cap `train.epochs` (`trainables/convergence.py`); a game phase
(`Method.game_phases`) then halves its learning rates and converges again, `train.anneal`
times, watched by a shadow attacker as well as by its own proxies (`trainables/shadow.py`);
the last epoch is deployed. `train.init: pretrained` first loads a cached task model trained
without defense into the client and the deployed server (`trainables/pretraining.py`) and
skips the phases it stands in for.

`Trial` is resumable: `state_dict()` after any epoch holds the networks, the optimisers,
the RNG state, the phase and its convergence state and the elapsed training time, so a
checkpointed trial continues from its last epoch and ends with the same metrics as an
uninterrupted one; `save` writes it atomically and fsynced, with a checksum that `restore`
verifies (`trainables/durable.py`). After the last epoch the batch-norm statistics of the deployed path and of
the method's proxies are recomputed on the train split (`trainables/batch_norm.py`), then
the attack suite runs.

Data: one fixed shuffle of each split (`DATA_SEED`) gives the train slice, the validation
hold-out (early stopping and model selection, never trained on) and the test slice. With
`attacks.data: disjoint` a further `attacks.disjoint_fraction` of the train slice is held out
of defense training and is all the attackers train on (an attacker without the defense's
training data); with `train` (default) the attackers train on the defense's own train split.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from tqdm.auto import tqdm

from trainables.attacks.registry import check_attack_names
from trainables.attacks.suite import (
    AttackData,
    AttackReport,
    check_release_ratios,
    run_attack_suite,
)
from trainables.batch_norm import recalibrate_batch_norm
from trainables.config import AttackConfig, TrialConfig
from trainables.convergence import Plateau, window_epochs
from trainables.data import Dataset, check_attributes, load_dataset
from trainables.data.batches import TensorSplit
from trainables.durable import UnreadableState, load_state, save_state
from trainables.errors import InputError
from trainables.methods import Method, MethodContext, method_class
from trainables.methods.ssim_losses import ssim_per_image
from trainables.metrics import client_gflops, params_mb
from trainables.models import SplitArchitecture
from trainables.shadow import ShadowAttacker

# Subsets and the validation hold-out come from one fixed shuffle, the same for every
# trial and seed, so all trials of a sweep see the same examples.
DATA_SEED = 0

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]
MethodBuilder = Callable[[TrialConfig, tuple[int, int, int], tuple[int, int]], Method]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("train.device: cuda was requested but no GPU is visible; use `auto` or `cpu`.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class TrialData:
    train: TensorSplit  # what the defense trains on
    val: TensorSplit
    test: TensorSplit
    attacker: TensorSplit  # what the attackers train on: `train` itself, or a disjoint share
    classes: tuple[int, int]
    image_shape: tuple[int, int, int]

    def attack_data(self) -> AttackData:
        """What the attack suite trains on (attacker split), selects on (val) and evaluates on (test)."""
        return AttackData(self.attacker, self.val, self.test, self.classes)


def slice_shares(config: TrialConfig, train_images: int) -> tuple[int, int]:
    """(validation hold-out, disjoint attacker share; 0 without one) of a train slice of
    `train_images`; an input error when one of the three parts would be empty."""
    n_val = int(round(train_images * config.dataset.val_fraction))
    if train_images - n_val < 1 or (config.dataset.val_fraction > 0 and n_val < 1):
        raise InputError(
            f"dataset.train_size: {train_images} train image(s) cannot hold a validation share of "
            f"{config.dataset.val_fraction} and still train; raise train_size."
        )
    if config.attacks.data != "disjoint":
        return n_val, 0
    n_attacker = int(round((train_images - n_val) * config.attacks.disjoint_fraction))
    if n_attacker < 1 or n_attacker >= train_images - n_val:
        raise InputError("attacks.disjoint_fraction leaves the defense or the attackers no training data; raise dataset.train_size.")
    return n_val, n_attacker


def convergence_window(config: TrialConfig, defense_images: int) -> int:
    """The convergence rule's window W, in epochs, on a defense split of `defense_images`."""
    batches = -(-defense_images // config.train.batch_size)
    return window_epochs(config.train.patience, config.train.window_steps, batches)


def unreachable_convergence(config: TrialConfig, defense_images: int) -> str | None:
    """Why no phase can converge under the cap on a defense split of `defense_images`, or None."""
    window = convergence_window(config, defense_images)
    if 2 * window <= config.train.epochs:
        return None
    return (
        f"train.epochs {config.train.epochs} is under the {2 * window} epochs a phase must run before the convergence rule "
        f"can stop it (its window: {window} epochs, to hold train.window_steps {config.train.window_steps} steps of "
        f"{defense_images} training images in batches of {config.train.batch_size}), so every phase stops at the cap and "
        f"the defense is flagged unconverged (train/converged 0); raise train.epochs to {2 * window}, or dataset.train_size"
    )


def prepare_data(dataset: Dataset, config: TrialConfig, device: torch.device) -> TrialData:
    cfg = config.dataset
    check_attributes(dataset.name, cfg.task, cfg.private, dataset.num_classes)
    rng = np.random.default_rng(DATA_SEED)
    train_order = rng.permutation(len(dataset.train))[: cfg.train_size]
    test_order = rng.permutation(len(dataset.test))[: cfg.test_size]
    n_val, n_attacker = slice_shares(config, len(train_order))

    def on_device(split, indices: np.ndarray) -> TensorSplit:
        return TensorSplit.from_split(split.subset(np.sort(indices)), cfg.task, cfg.private, device)

    defense_order, attacker_order = train_order[n_val:], None
    if n_attacker:
        defense_order, attacker_order = defense_order[n_attacker:], defense_order[:n_attacker]
    train = on_device(dataset.train, defense_order)
    return TrialData(
        train=train,
        val=on_device(dataset.train, train_order[:n_val]),
        test=on_device(dataset.test, test_order),
        attacker=train if attacker_order is None else on_device(dataset.train, attacker_order),
        classes=(dataset.num_classes[cfg.task], dataset.num_classes[cfg.private]),
        image_shape=dataset.image_shape,
    )


def build_method(config: TrialConfig, image_shape: tuple[int, int, int], classes: tuple[int, int]):
    cls = method_class(config.method)
    params = validate_params(config.method, config.params)
    arch = SplitArchitecture(config.model.backbone, config.model.split, image_shape, config.model.backbone_options())
    return cls(MethodContext(arch, classes[0], classes[1], config.train.lr), params)


def validate_params(method: str, params: dict):
    cls = method_class(method)
    try:
        return cls.Params.model_validate(params)
    except ValidationError as error:
        problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InputError(f"{problems} (method {method!r} takes {cls.hyperparameters()}).") from None


def check_config(config: TrialConfig) -> None:
    """Every registry key and hyperparameter of `config` is known and valid (no data needed)."""
    from trainables.data import DATASETS, check_options
    from trainables.models import check_split

    if config.dataset.name not in DATASETS:
        raise InputError(f"dataset.name: unknown dataset {config.dataset.name!r}; choose one of {sorted(DATASETS)}.")
    check_options(config.dataset.name, DATASETS[config.dataset.name], dict(config.dataset.options or {}))
    check_attributes(config.dataset.name, config.dataset.task, config.dataset.private)
    if config.dataset.train_size is not None:
        slice_shares(config, config.dataset.train_size)
    validate_params(config.method, config.params)
    check_split(config.model.backbone, config.model.split, config.model.backbone_options())
    check_attack_names(config.attacks)
    check_release_ratios(method_class(config.method), config.attacks)


class Trial:
    def __init__(self, config: TrialConfig, dataset: Dataset | None = None, build: MethodBuilder = build_method):
        self.config = config
        check_config(config)
        self.device = resolve_device(config.train.device)
        dataset = dataset if dataset is not None else load_dataset(config.dataset.name, config.dataset.options, config.dataset.root)
        self.data = prepare_data(dataset, config, self.device)
        task_model = None
        if config.train.init == "pretrained":
            from trainables.pretraining import pretrained_task_model

            task_model = pretrained_task_model(config, dataset)
        seed_everything(config.train.seed)
        self.method = build(config, self.data.image_shape, self.data.classes).to(self.device, memory_format=torch.channels_last)
        self.phases = self.method.phases
        self.phase_index = 0
        self.pretraining: dict[str, float] = {}
        if task_model is not None:
            from trainables.pretraining import load_task_model

            load_task_model(self.method, task_model.stages)
            self.pretraining = task_model.metrics
            self.phase_index = len(self.method.pretrained_phases)
        self.method.start_training(self.data.train, config.train.batch_size)
        self.method.start_phase(self.phase)
        self.shadow = ShadowAttacker(self.method.ctx.arch, self.data.classes[1], self.device) if self.method.game_phases else None
        self.window = convergence_window(config, len(self.data.train))
        if reason := unreachable_convergence(config, len(self.data.train)):
            log.warning("%s.", reason)
        self.plateau = self._new_plateau()
        self.phase_epochs = 0
        self.halvings = 0  # of the current phase's learning rates (a game's annealing)
        self.stage_epochs = 0  # epochs at the current learning rate
        self.phase_outcomes: dict[str, tuple[int, bool]] = {}  # finished phase -> (epochs, converged)
        self.phase_halvings: dict[str, int] = {}  # finished phase -> halvings of its learning rates
        self.epoch = 0
        self.train_seconds = 0.0
        self.history: list[dict[str, float]] = []

    def _new_plateau(self) -> Plateau:
        return Plateau(self.window, self.config.train.tolerance)

    @property
    def phase(self) -> str:
        return self.phases[min(self.phase_index, len(self.phases) - 1)]

    @property
    def finished(self) -> bool:
        """Every phase has converged or reached the cap."""
        return self.phase_index >= len(self.phases)

    @property
    def converged(self) -> bool:
        return self.finished and all(converged for _, converged in self.phase_outcomes.values())

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.train.precision == "bf16")

    def _shuffle_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + self.epoch)

    def train_epoch(self) -> dict[str, float]:
        start = time.perf_counter()
        self.method.train()
        batch_size = self.config.train.batch_size
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        batches = self.data.train.batches(batch_size, self._shuffle_generator())
        rate = f" at lr x{0.5**self.halvings:g}" if self.halvings else ""
        desc = f"train {self.phase} epoch {self.phase_epochs + 1}{rate}"
        for x, y_task, y_private in tqdm(batches, total=self.data.train.num_batches(batch_size), desc=desc, leave=False, disable=None):
            with self._autocast():
                losses = self.method.train_step(x, y_task, y_private)
            for key, value in losses.items():  # any named losses; each averaged over the steps that report it
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
        if not all(np.isfinite(v) for v in sums.values()):
            raise FloatingPointError(f"training diverged at epoch {self.epoch + 1}: losses {sums}")
        self.epoch += 1
        self.phase_epochs += 1
        self.stage_epochs += 1
        if self.shadow is not None:
            self.method.eval()
            self.shadow.train_epoch(self.method.validation_release, self.data.train, batch_size, self.epoch)
        signals = self.validate()
        metrics = {f"train/{key}": total / counts[key] for key, total in sums.items()}
        metrics.update(signals)
        metrics["defense/phase"] = float(self.phase_index)
        metrics["defense/lr_scale"] = 0.5**self.halvings
        self._end_epoch(signals)
        self.train_seconds += time.perf_counter() - start
        self.history.append(metrics)
        return metrics

    def _end_epoch(self, signals: dict[str, float]) -> None:
        """Count the epoch towards its phase's convergence. A game phase that has converged
        halves its learning rates and goes on, `train.anneal` times; a phase moves on to the
        next, or ends training, once it has converged at its last rate or reached the cap
        (`train.epochs` at one rate)."""
        converged = self.plateau.update(signals)
        if not converged and self.stage_epochs < self.config.train.epochs:
            return
        if converged and self.phase in self.method.game_phases and self.halvings < self.config.train.anneal:
            self.halve_learning_rates()
        else:
            self.finish_phase(converged)

    def halve_learning_rates(self) -> None:
        """Go on in this phase at half of every learning rate, with a fresh convergence window."""
        self.halvings += 1
        for optimizer in self.method.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        self.plateau = self._new_plateau()
        self.stage_epochs = 0

    def finish_phase(self, converged: bool) -> None:
        """Record the phase's outcome and start the next phase, if any."""
        self.phase_outcomes[self.phase] = (self.phase_epochs, converged)
        self.phase_halvings[self.phase] = self.halvings
        self.phase_index += 1
        self.phase_epochs = self.stage_epochs = self.halvings = 0
        self.plateau = self._new_plateau()
        if not self.finished:
            self.method.start_phase(self.phase)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The convergence signals on the validation split: the deployed utility, the proxy
        adversary's leakage, the best proxy decoder's SSIM and the shadow attacker's leakage."""
        if len(self.data.val) == 0:
            return {}
        self.method.eval()
        utility, leak, shadow = 0, None, 0
        decoders = self.method.proxy_decoders()
        ssims: dict[str, list[torch.Tensor]] = {name: [] for name in decoders}
        for x, y_task, y_private in self.data.val.batches(self.config.attacks.batch_size):
            z = self.method.validation_release(x)
            utility += (self.method.serve(z).argmax(1) == y_task).sum().item()
            proxy = self.method.proxy_leak(z)
            if proxy is not None:
                leak = (leak or 0) + (proxy.argmax(1) == y_private).sum().item()
            if self.shadow is not None:
                shadow += (self.shadow.predict(z) == y_private).sum().item()
            for name, decoder in decoders.items():
                ssims[name].append(ssim_per_image(decoder(z).float().clamp(0, 1), x.float()).cpu())
        n = len(self.data.val)
        signals = {"val/utility_acc": utility / n}
        if leak is not None:
            signals["val/proxy_leak_acc"] = leak / n
        if self.shadow is not None:
            signals["val/shadow_leak_acc"] = shadow / n
        if ssims:
            signals["val/proxy_ssim"] = max(torch.cat(values).mean().item() for values in ssims.values())
        return signals

    def training_metrics(self) -> dict[str, float]:
        """`train/epochs_run`, `train/converged` (1: every phase stopped by the convergence rule;
        0: one reached the cap), the rule's window `train/window_epochs` and, per phase, its epochs and whether it converged; a
        pretrained start adds the task model's own."""
        metrics = {"train/epochs_run": float(self.epoch), "train/converged": float(self.converged), "train/window_epochs": float(self.window)}
        for phase, (epochs, converged) in self.phase_outcomes.items():
            metrics[f"train/epochs_run/{phase}"] = float(epochs)
            metrics[f"train/converged/{phase}"] = float(converged)
            if phase in self.method.game_phases:
                metrics[f"train/lr_halvings/{phase}"] = float(self.phase_halvings[phase])
        metrics.update(self.pretraining)
        return metrics

    def attack(self, attacks: AttackConfig | None = None) -> tuple[dict[str, float], AttackReport]:
        """The attack suite on the trained method: the config's, or `attacks` (a screening budget)."""
        start = time.perf_counter()
        attacks = attacks or self.config.attacks
        recalibrate_batch_norm(self.method, self.data.train, attacks.batch_size, self._autocast())
        report = run_attack_suite(self.method, self.data.attack_data(), attacks, seed=self.config.train.seed + 1)
        metrics = dict(report.metrics)
        metrics.update(self.training_metrics())
        metrics["client/gflops"] = client_gflops(self.method.release, self.data.image_shape, self.device)
        metrics["client/params_mb"] = params_mb(self.method.client_network())
        metrics["time/train_s"] = self.train_seconds
        metrics["time/attack_s"] = time.perf_counter() - start
        return metrics, report

    def train(self, on_epoch: EpochCallback | None = None) -> None:
        """The remaining training epochs: every phase to convergence or its cap."""
        while not self.finished:
            metrics = self.train_epoch()
            if on_epoch is not None:
                on_epoch(self.epoch, metrics)

    def run(self, on_epoch: EpochCallback | None = None) -> tuple[dict[str, float], AttackReport]:
        self.train(on_epoch)
        return self.attack()

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "phase_index": self.phase_index,
            "phase_epochs": self.phase_epochs,
            "halvings": self.halvings,
            "stage_epochs": self.stage_epochs,
            "phase_halvings": dict(self.phase_halvings),
            "phase_outcomes": {phase: list(outcome) for phase, outcome in self.phase_outcomes.items()},
            "plateau": self.plateau.state_dict(),
            "shadow": self.shadow.state_dict() if self.shadow is not None else None,
            "method": self.method.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.method.optimizers.items()},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.train_seconds = state["train_seconds"]
        self.history = list(state["history"])
        self.phase_index = state["phase_index"]
        self.phase_epochs = state["phase_epochs"]
        self.halvings = state["halvings"]
        self.stage_epochs = state["stage_epochs"]
        self.phase_halvings = {phase: int(n) for phase, n in state["phase_halvings"].items()}
        self.phase_outcomes = {phase: (int(epochs), bool(converged)) for phase, (epochs, converged) in state["phase_outcomes"].items()}
        self.plateau.load_state_dict(state["plateau"])
        if self.shadow is not None:
            self.shadow.load_state_dict(state["shadow"])
        self.method.load_state_dict(state["method"])
        if not self.finished:
            self.method.start_phase(self.phase)
        for name, optimizer in self.method.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def save(self, path: Path) -> None:
        """Written atomically and fsynced, with a checksum (`trainables.durable`)."""
        save_state(self.state_dict(), path)

    def restore(self, path: Path) -> None:
        """Continue from a state `save` wrote; `UnreadableState` if the file is damaged, not a
        state, or a state of another version of the trial (the trial is then unusable: build
        a fresh one)."""
        state = load_state(path, self.device)
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise UnreadableState(path, f"it does not fit this trial ({type(error).__name__}: {error})") from None
