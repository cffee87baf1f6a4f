"""The sweep spec: `TrialConfig` plus the sweep-only sections, loaded and validated once."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from sweeps.overrides import apply_overrides, check_path, model_at
from sweeps.search_space import SearchSpace, load_search_space
from sweeps.text_files import read_utf8
from trainables.attacks.registry import registered
from trainables.config import Strict, TrialConfig, with_assignment
from trainables.data import DATASETS
from trainables.errors import InputError, did_you_mean
from trainables.schema import is_interval_key
from trainables.trial import check_config


class Objective(Strict):
    metric: str = Field(description="a final metric key (docs/metrics.md), or one end of its interval (<key>:ci95_lo, <key>:ci95_hi)")
    mode: Literal["max", "min"] = Field(description="max for utility, min for leakage and reconstruction")


class SearchConfig(Strict):
    sampler: Literal["gp", "tpe", "nsga2", "random", "grid"] = Field(
        "gp",
        description="Optuna's multi-objective sampler (gp: its Gaussian-process sampler, the fastest to the front on the tabular benchmark), or grid: every combination of choice domains",
    )
    num_samples: int = Field(16, ge=1, description="trials (sampled configurations) of a launch; a grid runs at most its size")
    max_concurrent: int = Field(2, ge=1, description="trials running at once")
    seed: int = Field(0, description="the sampler's seed")
    max_failures: int = Field(0, ge=0, description="retries of a failed trial from its last finished epoch")
    replicates: int = Field(
        1, ge=1,
        description="seeds each sampled configuration runs (train.seed + 0..k-1, one MLflow child run each, "
        "tagged with one privsweep.config_id); the searcher is told their mean",
    )
    screen: float | None = Field(
        None, gt=0, lt=1,
        description="safe attack-budget pruning: after training, a screening attack at this fraction of the attack budget; "
        "a trial whose best case (the favourable end of each screened interval) is dominated by the launch's front "
        "skips the full attack and is told PRUNED; null = off",
    )


class ResourceConfig(Strict):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial (Ray resources; also the trial's torch threads)")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial; a fraction (0.25) shares one GPU between trials")


# MLflow's tracking stores (a path alone is a file store)
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file", "databricks")


class TrackingConfig(Strict):
    uri: str | None = Field(None, description="MLflow tracking URI (an mlflow server for a cluster); null = sqlite mlflow.db in $PRIVSWEEP_HOME or the repo root")
    experiment: str | None = Field(None, description="MLflow experiment; null = name. --smoke appends /smoke")

    @field_validator("uri")
    @classmethod
    def _known_store(cls, uri: str | None) -> str | None:
        if uri is None or "://" not in uri and ":" not in uri.split("/")[0]:
            return uri
        scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
        if scheme not in TRACKING_SCHEMES:
            raise ValueError(f"{scheme}:// is no MLflow tracking store; use one of {', '.join(TRACKING_SCHEMES)} (e.g. sqlite:////abs/path/mlflow.db or http://host:5000)")
        if scheme == "sqlite" and not uri.startswith("sqlite:////"):
            raise ValueError("a SQLite store needs an absolute path: sqlite:////abs/path/mlflow.db (four slashes)")
        return uri

    @field_validator("experiment")
    @classmethod
    def _stays_in_storage(cls, experiment: str | None) -> str | None:
        """The name is also the launch folder's path in the launch storage (trainables/storage.py)."""
        if experiment is not None and (not experiment.strip() or experiment.startswith(("/", "~")) or ".." in experiment.split("/")):
            raise ValueError(f"{experiment!r} would put the launch folder outside the launch storage ($PRIVSWEEP_STORAGE, "
                             "else <home>/ray_results); use a plain name such as my_sweep")
        return experiment


# A retrained server model trains on the attack budget: screened, it is no upper bound.
UNSCREENABLE = ("utility/acc_retrained",)
DEFAULT_OBJECTIVES = [Objective(metric="utility/acc", mode="max"), Objective(metric="privacy/leak_acc", mode="min")]


class SweepSpec(TrialConfig):
    search_space: str | dict[str, Any] | None = Field(
        None, description="what is swept: a file name under search_spaces/ or an inline mapping (docs/design.md, search-space grammar); null = nothing"
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTIVES), min_length=1, description="what the searcher optimises and the front is drawn in"
    )
    search: SearchConfig = Field(default_factory=SearchConfig, description="the searcher and the size of a launch")
    resources: ResourceConfig = Field(default_factory=ResourceConfig, description="what one trial asks Ray for")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="where MLflow records the sweep")

    @model_validator(mode="after")
    def _screened_objectives_have_a_best_case(self) -> SweepSpec:
        """A screened value bounds the final one only for the suite's attack scores and the
        deployed utility: a retrained server model is trained by the attack budget too (so a
        screened one is no upper bound), and an interval end has no interval of its own."""
        if self.search.screen is None:
            return self
        unbounded = [o.metric for o in self.objectives if is_interval_key(o.metric) or o.metric.startswith(UNSCREENABLE)]
        if unbounded:
            raise ValueError(
                f"search.screen cannot bound the objective(s) {unbounded}: a screening attack's value is a best case only "
                "for a point metric measured on the deployed model or by the attack suite's attackers; "
                "set search.screen: null, or use e.g. utility/acc and privacy/leak_acc"
            )
        return self

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    def space(self) -> SearchSpace:
        return load_search_space(self.search_space)

    def base_config(self) -> dict:
        """The trial part of the spec as a plain mapping (what every trial starts from)."""
        return self.model_dump(mode="json", by_alias=True, include=set(TrialConfig.model_fields))

    def trial_config(self, assignment: dict[str, Any] | None = None) -> TrialConfig:
        """The trial config of this spec with a sampled `assignment` (dotted path -> value) applied."""
        config = validated(TrialConfig, with_assignment(self.base_config(), assignment or {}))
        check_config(config)
        return config


def format_validation_error(error: ValidationError, schema: type[BaseModel]) -> str:
    lines = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"]) or "spec"
        # a whole-spec check (empty loc) says what is wrong itself: its input is the whole spec
        got = f" (got {e['input']!r})" if e["type"] not in ("missing", "extra_forbidden") and e["loc"] else ""
        hint = ""
        if e["type"] == "extra_forbidden" and e["loc"]:
            section = model_at(schema, e["loc"][:-1])
            hint = did_you_mean(str(e["loc"][-1]), section.model_fields) if section else ""
        lines.append(f"{field}: {e['msg']}{got}{hint}")
    return "; ".join(lines)


def validated(model: type[BaseModel], raw: dict):
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise InputError(f"invalid spec: {format_validation_error(error, model)}.") from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        specs = sorted(p.name for p in path.glob("*.yaml"))[:5]
        raise InputError(f"{path}: is a directory; pass one spec file in it"
                         + (f", e.g. {path / specs[0]} (it has {', '.join(specs)})." if specs else "."))
    if not path.is_file():
        raise InputError(f"{path}: spec file not found; pass the path of a sweep YAML, e.g. sweeps/quickstart.yaml.")
    try:
        raw = yaml.safe_load(read_utf8(path))
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML: {error}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a spec is a YAML mapping with `name`, `method`, `dataset`, ...; got {type(raw).__name__}.")
    return raw


SMOKE_TRAIN_SIZE, SMOKE_TEST_SIZE, SMOKE_IMAGE_SIZE = 256, 128, 32
# A smoke run's 256-image, 1-epoch trials look "most private" (leakage 0.23 against a real
# best of 0.42 on the quickstart), so they never share the real sweep's experiment.
SMOKE_EXPERIMENT_SUFFIX = "/smoke"


def loader_image_size(dataset: dict) -> int | None:
    """The image side a spec's dataset loads at, for loaders with an `image_size` option."""
    loader = DATASETS.get(dataset.get("name"))
    parameter = inspect.signature(loader).parameters.get("image_size") if loader else None
    if parameter is None:
        return None
    value = (dataset.get("options") or {}).get("image_size", parameter.default)
    return value if isinstance(value, int) else None


def shrink_for_smoke(raw: dict) -> dict:
    """Seconds-long version of any spec, same structure: tiny data (images of a loader with an
    `image_size` option at most 32 px), 1 epoch, every attacker's budget shrunk by its own
    `shrink_for_smoke` (1 attack epoch, a 4-image 5-step white-box attack with one TV weight),
    the first of `attacks.release_ratios` only, 2 trials, run on
    the machine at hand (1 CPU per trial; no GPU unless this machine has one), so a spec
    written for a GPU cluster can be smoke-checked on a laptop. `load_spec` also moves a
    smoke run into its own MLflow experiment, `<experiment>/smoke`."""
    raw = copy.deepcopy(raw)
    dataset = raw.setdefault("dataset", {})
    dataset["train_size"] = min(dataset.get("train_size") or SMOKE_TRAIN_SIZE, SMOKE_TRAIN_SIZE)
    dataset["test_size"] = min(dataset.get("test_size") or SMOKE_TEST_SIZE, SMOKE_TEST_SIZE)
    image_size = loader_image_size(dataset)
    if image_size is not None:  # e.g. full-resolution CelebA: VGG at 178 px is minutes per epoch
        dataset["options"] = {**(dataset.get("options") or {}), "image_size": min(image_size, SMOKE_IMAGE_SIZE)}
    raw.setdefault("train", {})["epochs"] = 1
    attacks = raw.setdefault("attacks", {})
    attacks["gallery"] = min(attacks.get("gallery", 8), 4)
    if attacks.get("release_ratios"):  # each ratio is one more attack suite: DISCO's 3 were 15 s of its 56 s trial
        attacks["release_ratios"] = attacks["release_ratios"][:1]
    for attacker in registered().values():
        attacker.shrink_for_smoke(attacks)
    search = raw.setdefault("search", {})
    search["num_samples"] = 2
    search["max_concurrent"] = min(search.get("max_concurrent", 2), 2)
    resources = raw.setdefault("resources", {})
    resources["cpu"] = 1
    if not torch.cuda.is_available():
        resources["gpu"] = 0
    return raw


def load_spec(path: str | Path, overrides: list[str] | None = None, smoke: bool = False) -> SweepSpec:
    """Read, override, (shrink,) and validate a spec, including its search space and params."""
    raw = read_yaml(path)
    if smoke:
        validated(SweepSpec, raw)  # the user's own spec first: shrinking assumes its sections are mappings
        raw = shrink_for_smoke(raw)
    raw = apply_overrides(raw, overrides or [], SweepSpec)  # explicit values win over --smoke
    if smoke:  # ... except the experiment: a smoke run never lands among real results
        tracking = raw.setdefault("tracking", {})
        tracking["experiment"] = (tracking.get("experiment") or raw["name"]) + SMOKE_EXPERIMENT_SUFFIX
    spec = validated(SweepSpec, raw)
    check_space(spec)
    return spec


def check_space(spec: SweepSpec) -> None:
    """Every bound and choice of the search space must give a valid trial config."""
    spec.trial_config()
    for method, path, domain in spec.space().items():
        check_path(SweepSpec, path)
        context = {"method": method} if method else {}
        for value in domain.values:
            try:
                spec.trial_config({**context, path: value})
            except InputError as error:
                where = f"search_space.by_method.{method}.{path}" if method else f"search_space.{path}"
                raise InputError(f"{where}: value {value!r} is invalid: {error}") from None
