"""What one trial needs, as pydantic models validated once at the edge.

The sweep spec (`sweeps/spec.py`) extends `TrialConfig` with the sweep-only sections.
Every model forbids unknown fields, so a typo fails validation naming the field.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from trainables.schema import THREAT_MODELS


class Strict(BaseModel):
    """Unknown fields are errors; numbers are finite (`.inf`, `1e400` and NaN are refused,
    which `gt=0` alone lets through); a boolean is no number (YAML's `true` would otherwise
    become the integer 1)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_boolean_as_number(cls, value, info)


def refuse_boolean_as_number(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """`value` unchanged, unless it is a boolean for a field whose type admits no boolean."""
    if isinstance(value, bool) and info.field_name in model.model_fields:
        annotation = model.model_fields[info.field_name].annotation
        admitted = {annotation, *get_args(annotation)}
        if not admitted & {bool, Any}:
            raise ValueError(f"got the boolean {str(value).lower()}, where the field takes {annotation_name(annotation)}")
    return value


def annotation_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


class DatasetConfig(Strict):
    name: str = Field(description="dataset registry key (fashion_mnist, colored_fashion_mnist, cifar10, celeba, fairface, mnist, synthetic)")
    task: str = Field(description="attribute the deployed server predicts")
    private: str = Field(description="attribute the adversary tries to leak")
    train_size: int | None = Field(None, ge=1, description="first N of a fixed shuffle of the train split; null = all")
    test_size: int | None = Field(None, ge=1, description="first N of a fixed shuffle of the test split; null = all")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="held out of train for per-epoch validation")
    root: str | None = Field(None, description="folder holding the dataset files; null = $PRIVSWEEP_DATA (default ~/.cache/privsweep/data)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the dataset's loader, e.g. image_size (CelebA, FairFace) or correlation (colored_fashion_mnist)"
    )


class ModelConfig(Strict):
    backbone: str = Field("small_cnn", description="backbone registry key (small_cnn, pp_cnn, resnet18, vgg11/16/19, mobilenet_v2, alexnet)")
    split: int | str = Field(
        2, description="where the client ends: 0 = the image itself (nothing on the client), a block number (small_cnn 1-4, resnet18 1-4 = after layer1-4) or a named point (vgg pool1..pool5)"
    )
    stem: Literal["cifar", "imagenet"] | None = Field(
        None, description="resnet18 only: cifar (3x3 conv, no max-pool: for 32 px images) or imagenet (7x7 conv + max-pool); null = the backbone's default"
    )

    @field_validator("split")
    @classmethod
    def _as_text(cls, value: int | str) -> str:
        return str(value)

    def backbone_options(self) -> dict[str, Any]:
        return {"stem": self.stem} if self.stem else {}


class TrainConfig(Strict):
    epochs: int = Field(
        60, ge=1,
        description="cap on the defense's training epochs per phase of its method (per learning rate in an annealed "
        "game); each phase stops earlier when its validation signals stop moving (patience, tolerance; "
        "trainables/convergence.py)",
    )
    patience: int = Field(
        10, ge=1,
        description="window W of the convergence rule, in epochs (at least window_steps optimiser steps): a phase has converged once no validation signal (utility, every "
        "proxy adversary's score) trends over its last 2 W epochs by more than tolerance per W epochs, nor beyond twice "
        "its standard error (so a phase runs at least 2 W epochs)",
    )
    window_steps: int = Field(
        360, ge=0,
        description="floor of the window W in optimiser steps: W = max(patience, ceil(window_steps / batches per epoch)) "
        "epochs, so a small data slice watches a game over as many steps as a large one (trainables/convergence.py); "
        "0 = patience alone",
    )
    tolerance: float = Field(
        0.01, ge=0,
        description="smallest trend of a validation signal over W epochs that counts as movement (absolute, on "
        "accuracies and SSIM)",
    )
    anneal: int = Field(
        2, ge=0,
        description="in a game phase (the client against the method's own adversaries): times the phase halves every "
        "learning rate once its signals have converged, then trains on until they converge again (a game at a constant "
        "rate keeps cycling; trainables/convergence.py). The cap train.epochs holds at each rate",
    )
    init: Literal["scratch", "pretrained"] = Field(
        "scratch",
        description="scratch: every network from random weights; pretrained: the client and the deployed server start "
        "from a task model trained without defense (to convergence, once per data slice, backbone and seed, cached)",
    )
    batch_size: int = Field(128, ge=1, description="defense training batch size")
    lr: float = Field(1e-3, gt=0, description="learning rate of defense training (Adam unless a method says otherwise in its docstring)")
    seed: int = Field(0, description="seeds data order, initialisation, defense randomness and every attacker: same seed, same CPU metrics")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when this machine has a GPU, else cpu")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16 autocasts defense training (about 2x on CPUs with AVX512-BF16 and on GPUs); attacks stay fp32"
    )


# the TV choice's inversions: its pick agreed with 1600 steps' on every release measured
# (`trainables.attacks.attackers.whitebox`), at an eighth of the cost
SELECTION_STEPS = 200


class WhiteboxConfig(Strict):
    images: int = Field(256, ge=1, description="test images inverted: the first N of the test slice")
    steps: int = Field(1600, ge=1, description="Adam steps per batch of images (cosine-annealed learning rate)")
    lr: float = Field(1.0, gt=0, description="peak Adam learning rate on the pixels (projected onto [0, 1] after each step)")
    beta2: float = Field(0.8, gt=0, lt=1, description="Adam's second-moment decay on the pixels (torch's default is 0.999)")
    tv: list[float] = Field(
        default_factory=lambda: [0.1, 1.0], min_length=1,
        description="weights of the total-variation prior to choose from (on validation images; one value: no choice)",
    )
    selection_images: int = Field(64, ge=1, description="validation images the TV weight is chosen on")
    selection_steps: int = Field(
        SELECTION_STEPS, ge=1, description="Adam steps of each candidate's inversion when the TV weight is chosen (at most `steps`)"
    )
    draws: int = Field(1, ge=1, description="fresh defense-randomness draws averaged per step (stochastic releases only)")
    decoder_lr: float = Field(
        0.1, gt=0,
        description="decoder_prior attacker: peak Adam learning rate of an inversion from the decoder's output (at the grey "
        "start's 1.0, Adam's first step moves every pixel by about 1 and forgets the start)",
    )
    decoder_pull: list[float] = Field(
        default_factory=lambda: [0.0, 1.0, 10.0, 100.0], min_length=1,
        description="decoder_prior attacker: weights of the pull towards the best decoder's reconstruction to choose from "
        "(on validation images, beside the grey start and the decoder's output alone)",
    )
    batch_size: int = Field(256, ge=1, description="images optimised together")

    @field_validator("tv", "decoder_pull", mode="before")
    @classmethod
    def _as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int | float) else value

    @field_validator("tv", "decoder_pull")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("weights must be >= 0")
        return value


# `attacks.suite`: every registered attacker of the default suite, or those of one threat model
SUITES = ("default", *THREAT_MODELS)


class AttackConfig(Strict):
    suite: Literal[SUITES] = Field(
        "default",
        description="the attackers used where leakage or reconstruction is null: the default suite (every registered attacker "
        "that joins it), or its attackers of one threat model (docs/metrics.md)",
    )
    leakage: list[str] | None = Field(
        None, min_length=1, description="leakage attackers (private-attribute classifiers) by name; null = the suite's"
    )
    reconstruction: list[str] | None = Field(
        None, min_length=1,
        description="reconstruction attackers by name (trained decoders, the white-box inversion); null = the suite's",
    )
    epochs: int = Field(
        40, ge=1,
        description="cap on attack epochs; each attacker stops earlier when it converges (patience). The leakage classifiers' "
        "cap, patience and decay_patience are twice the suite's (their classes' stopping_scale)",
    )
    patience: int = Field(5, ge=1, description="an attacker stops after this many epochs in a row without a validation improvement")
    min_improvement: float = Field(1e-3, ge=0, description="relative validation-accuracy gain that counts as an improvement (classifiers)")
    decoder_min_improvement: float = Field(
        5e-3, ge=0, description="relative validation-MSE reduction that counts as an improvement (decoders)"
    )
    batch_size: int = Field(
        256, ge=1,
        description="images released at once for the learned attackers and the retrained utility model; an attacker whose "
        "class sets a smaller batch (mirror: 64) steps once per chunk of it",
    )
    lr: float | None = Field(
        None, gt=0, description="peak Adam learning rate of every learned attacker; null = each attacker's own measured rate (its class's peak_lr)"
    )
    schedule: Literal["plateau", "constant"] = Field(
        "plateau", description="attacker learning rate after the one-epoch warm-up: halved after decay_patience stale validation epochs in a row, or constant"
    )
    decay_patience: int = Field(
        2, ge=1, description="stale validation epochs in a row before the plateau schedule halves an attacker's rate (then the count restarts)"
    )
    restarts: int = Field(
        1, ge=0,
        description="times a learned attacker that stopped without one significant validation gain over its first scored epoch "
        "(stuck; a perfect first score excepted) trains again from its initial weights, its rate halved at each restart, "
        "within the same cap",
    )
    ema: float | None = Field(
        None, ge=0, lt=1,
        description="decay per step of the moving average of a learned attacker's weights, which is what is scored and evaluated "
        "(0: the weights themselves); null = each attacker's measured setting (the leakage classifiers average at 0.97)",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16 autocasts the learned attackers' training steps (evaluation and the white-box attacker stay fp32); "
        "benchmarks/gpu_check.py measures both on a GPU. Never on a CPU without AVX512-BF16/AMX: 0.16x fp32 there",
    )
    data: Literal["train", "disjoint"] = Field(
        "train",
        description="attacker data: the defense's own train split (the strong attacker), or a disjoint share held out of defense training",
    )
    disjoint_fraction: float = Field(0.5, gt=0, lt=1, description="with data: disjoint, the share of the train split kept for the attackers")
    selection: Literal["val_best", "last"] = Field(
        "val_best", description="attacker weights evaluated on test: best epoch on the validation split (and early stopping), or the last"
    )
    release_ratios: list[float] | None = Field(None, description="extra inference-time pruning ratios to attack at")
    gallery: int = Field(8, ge=0, description="test images in reconstructions.png")
    bootstrap: int = Field(
        1000, ge=100,
        description="test-set bootstrap resamples behind the 95 % interval logged beside every final metric (<key>:ci95_lo, <key>:ci95_hi)",
    )
    whitebox: WhiteboxConfig = Field(default_factory=WhiteboxConfig, description="settings of the white-box inversion attacker")


class TrialConfig(Strict):
    name: str = Field("trial", description="the sweep's name: its MLflow experiment unless tracking.experiment is set")
    method: str = Field(description="method registry key (docs/design.md, Methods), e.g. noisy_arl, disco, none")
    dataset: DatasetConfig = Field(description="the data, and which attribute is the task and which is private")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the backbone and where it is split between client and server")
    train: TrainConfig = Field(default_factory=TrainConfig, description="defense training")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the method's own hyperparameters (sigma, lambda, rho, ...), validated by the method's params model"
    )
    attacks: AttackConfig = Field(default_factory=AttackConfig, description="the attack suite run on the frozen defense, and how its numbers are reported")


def set_path(raw: dict, path: str, value: Any) -> None:
    """Set `raw[a][b][c] = value` for the dotted path `a.b.c`, creating mappings on the way."""
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


# The Optuna study names a conditional domain `<method>:<path>`; its value is also sampled
# under the plain path, which is the one applied.
CONDITIONAL_SEPARATOR = ":"


def with_assignment(base: dict, assignment: dict[str, Any]) -> dict:
    """A raw trial config with sampled values (dotted path -> value) applied.

    When the sampled `method` differs from the base one, the base `params` belong to the
    other method and are dropped: the chosen method's params come from the assignment.
    """
    raw = copy.deepcopy(base)
    if "method" in assignment and assignment["method"] != raw.get("method"):
        raw["params"] = {}
    for path, value in assignment.items():
        if CONDITIONAL_SEPARATOR not in path:
            set_path(raw, path, value)
    return raw
