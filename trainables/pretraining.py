"""`train.init: pretrained`: the task model every defense of a launch starts from.

DISCO's first phase and DeepObfuscator's pre-training start their privacy training from a
model trained for the task alone. `pretrained_task_model` trains that model once per
(defense train split, backbone, seed, training settings) and caches it on disk
(`$PRIVSWEEP_DATA/task-models/<key>.pt`), so every trial of a launch, at every split and on
a resume, loads the same weights instead of training its own.

The task model is the whole backbone plus its head (split "0": every stage on the
"server"), trained on the task cross-entropy under the trainer's convergence rule
(`trainables/convergence.py`, cap `train.epochs`), with no proxy. It is kept as a list of
per-stage weights, stages then head, so it loads into a client and server split anywhere:
`[*client, *server]` is the same list of stages at every split. Its `train/task_model/*`
metrics (epochs run, converged, validation utility, seconds) go into every trial that loads it.

A file lock beside the cache file makes concurrent trials wait for the first one's model
instead of training their own; the file is written atomically. The key holds every setting
that changes the weights (the data slice, the backbone, the seed, batch, lr, cap, patience,
window_steps, tolerance, precision, the attacker split that is held out of defense training) and
`TASK_MODEL_VERSION`, to bump when this training changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from torch import nn
from torch.nn import functional as F

from trainables.config import TrialConfig
from trainables.data import Dataset
from trainables.data.paths import data_root
from trainables.durable import UnreadableState, load_state, save_state, set_aside
from trainables.errors import InputError
from trainables.methods.base import Method, MethodContext, NoParams, ReleasesClientFeatures
from trainables.methods.updates import make_optimizer, parameters_of, step
from trainables.models import INPUT_SPLIT, SplitArchitecture

TASK_MODEL_VERSION = 1

log = logging.getLogger(__name__)


class TaskModel(ReleasesClientFeatures, Method):
    """The backbone and its task head, trained on the task cross-entropy alone (Adam at
    `train.lr`); no defense, no proxy."""

    def __init__(self, ctx: MethodContext, params: NoParams):
        super().__init__(ctx, params)
        self.client = ctx.arch.client()
        self.server = ctx.arch.server(ctx.task_classes)
        for name in ("client", "server"):
            parameters = parameters_of(getattr(self, name))
            if parameters:
                self.optimizers[name] = make_optimizer(parameters, ctx.lr)

    def train_step(self, x: torch.Tensor, y_task: torch.Tensor, y_private: torch.Tensor) -> dict[str, float]:
        task_loss = F.cross_entropy(self.server(self.client(x)), y_task)
        step(task_loss, list(self.optimizers.values()), self.client, self.server)
        return {"task_loss": task_loss.item()}


@dataclass
class PretrainedTaskModel:
    stages: list[dict[str, torch.Tensor]]  # per-stage weights, stages then head
    metrics: dict[str, float]  # train/task_model/*


def task_model_key(config: TrialConfig) -> str:
    data, train, model = config.dataset, config.train, config.model
    fields = {
        "version": TASK_MODEL_VERSION,
        "dataset": [data.name, data.options, data.task, data.train_size, data.val_fraction],
        "attacker_split": [config.attacks.data, config.attacks.disjoint_fraction if config.attacks.data == "disjoint" else None],
        "backbone": [model.backbone, model.backbone_options()],
        "train": [train.seed, train.batch_size, train.lr, train.epochs, train.patience, train.window_steps, train.tolerance, train.precision],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def task_model_path(config: TrialConfig) -> Path:
    return data_root() / "task-models" / f"{task_model_key(config)}.pt"


def _build_task_model(config: TrialConfig, image_shape: tuple[int, int, int], classes: tuple[int, int]) -> Method:
    arch = SplitArchitecture(config.model.backbone, INPUT_SPLIT, image_shape, config.model.backbone_options())
    return TaskModel(MethodContext(arch, classes[0], classes[1], config.train.lr), NoParams())


def stages_of(client: nn.Module, server: nn.Module) -> list[nn.Module]:
    """The backbone's stages then its head, whatever the split: `[*client, *server]`."""
    return [*client.children(), *server.children()]


def train_task_model(config: TrialConfig, dataset: Dataset) -> PretrainedTaskModel:
    from trainables.trial import Trial

    task_config = config.model_copy(update={
        "method": "none", "params": {}, "train": config.train.model_copy(update={"init": "scratch"}),
        "attacks": config.attacks.model_copy(update={"release_ratios": None}),  # the defense's knob, not the task model's
    })
    trial = Trial(task_config, dataset, build=_build_task_model)
    trial.train()
    stages = [{k: v.detach().cpu() for k, v in stage.state_dict().items()} for stage in stages_of(*trial.method.task_networks())]
    last = trial.history[-1] if trial.history else {}
    metrics = {
        "train/task_model/epochs_run": float(trial.epoch),
        "train/task_model/converged": float(trial.converged),
        "train/task_model/seconds": trial.train_seconds,
    }
    if "val/utility_acc" in last:
        metrics["train/task_model/val_utility_acc"] = last["val/utility_acc"]
    return PretrainedTaskModel(stages, metrics)


def pretrained_task_model(config: TrialConfig, dataset: Dataset) -> PretrainedTaskModel:
    """The cached task model for `config`, trained now if no trial has trained it yet."""
    path = task_model_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            try:
                saved = load_state(path, torch.device("cpu"))
                return PretrainedTaskModel(saved["stages"], saved["metrics"])
            except UnreadableState as error:
                log.warning("%s; moved to %s, and the task model is trained again", error, set_aside(path).name)
        model = train_task_model(config, dataset)
        save_state({"stages": model.stages, "metrics": model.metrics}, path)
        return model


def load_task_model(method: Method, stages: list[dict[str, torch.Tensor]]) -> None:
    """The task model's weights into `method.task_networks()` (client and deployed server)."""
    modules = stages_of(*method.task_networks())
    if len(modules) != len(stages):
        raise InputError(
            f"train.init: pretrained: {type(method).__name__}'s client and server have {len(modules)} stages where the "
            f"task model has {len(stages)}; use train.init: scratch for it."
        )
    for module, state in zip(modules, stages, strict=True):
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise InputError(
                f"train.init: pretrained: {type(method).__name__}'s client or server does not have the plain backbone's "
                f"shapes, so the task model cannot be loaded into it ({str(error).splitlines()[0]}); use train.init: scratch "
                "(DISCO with preprocess: true feeds its client d^2 channels)."
            ) from None
