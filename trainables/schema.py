"""Names shared by the trainables, the launcher and the analysis, importable without torch
(the analysis never imports torch): the final metric keys with their direction, range and
label; the interval suffixes of metric keys; the MLflow tag names; the parameters' symbols.
A new metric or tag is added here, once, and every package reads it from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class MetricInfo:
    """A final metric: its label on axes and in tables, the mode a sweep objective on it takes
    (the defender's view: "max" for utility, "min" for leakage and similarity, "max" for a
    reconstruction error; None for a reference number that is no objective, such as a chance
    rate), the range of its meaningful values (None: unbounded on that side; a hypervolume
    reference takes the end that is worst for the objective) and a short table heading."""

    label: str
    mode: str | None
    low: float | None = None
    high: float | None = None
    short: str | None = None


# Ranges: accuracies, SSIM, MS-SSIM, LPIPS, and L1/MSE of images in [0, 1] lie in [0, 1]
# (SSIM may dip below 0 for anti-correlated images; 0 is already unrelated). MCC's
# meaningful floor is chance, 0.
METRICS: dict[str, MetricInfo] = {
    "utility/acc": MetricInfo("Utility: task accuracy", "max", 0.0, 1.0, "acc"),
    "utility/acc_retrained": MetricInfo("Utility: accuracy of a retrained server model", "max", 0.0, 1.0),
    "utility/mcc": MetricInfo("Utility: Matthews correlation", "max", 0.0, 1.0),
    "utility/chance": MetricInfo("Utility: majority-class rate of the task", None, 0.0, 1.0),
    "privacy/leak_acc": MetricInfo("Leakage: strongest attacker's accuracy on the private attribute", "min", 0.0, 1.0,
                                   "leak"),
    "privacy/leak_chance": MetricInfo("Leakage: majority-class rate of the private attribute", None, 0.0, 1.0),
    "privacy/leak_floor": MetricInfo("Leakage floor: the private attribute predicted from the task label", None,
                                     0.0, 1.0),
    "privacy/delta": MetricInfo("Δ = utility − leakage", "max", -1.0, 1.0, "Δ"),
    "recon/ssim": MetricInfo("Reconstruction SSIM (strongest decoder)", "min", 0.0, 1.0, "SSIM"),
    "recon/ms_ssim": MetricInfo("Reconstruction MS-SSIM (strongest decoder)", "min", 0.0, 1.0),
    "recon/psnr": MetricInfo("Reconstruction PSNR, dB (strongest decoder)", "min", 0.0, None, "PSNR"),
    "recon/l1": MetricInfo("Reconstruction L1 error (strongest decoder)", "max", 0.0, 1.0),
    "recon/mse": MetricInfo("Reconstruction MSE (strongest decoder)", "max", 0.0, 1.0),
    "recon/lpips": MetricInfo("Reconstruction LPIPS (strongest decoder)", "max", 0.0, 1.0),
    "client/gflops": MetricInfo("Client GFLOPs per input", "min", 0.0, None, "GFLOPs"),
    "client/params_mb": MetricInfo("Client parameters, MB", "min", 0.0, None),
    "time/train_s": MetricInfo("Training time, s", "min", 0.0, None),
    "time/attack_s": MetricInfo("Attack time, s", "min", 0.0, None),
}
# What a method says about itself: logged where the method has its own adversaries, never an
# objective (a defense tuned on its own adversary's numbers is the false sense of privacy).
PROXY_METRICS: dict[str, MetricInfo] = {
    "privacy/proxy_leak_acc": MetricInfo("Leakage the method's own adversary reports", None, 0.0, 1.0),
    "recon/proxy_ssim": MetricInfo("SSIM the method's own decoders report", None, 0.0, 1.0),
}
# The per-image similarity metrics of a reconstruction: `recon/<m>` and `recon/<m>/<decoder>`.
RECON_METRICS = tuple(key.removeprefix("recon/") for key in METRICS if key.startswith("recon/"))
# The strongest decoder is the one worst for the defense: highest SSIM, lowest error.
RECON_HIGHER_IS_BETTER = {name: METRICS[f"recon/{name}"].mode == "min" for name in RECON_METRICS}


def metric_info(key: str) -> MetricInfo | None:
    """The info of a final key, also of an attacker's key (`recon/ssim/mirror`), an interval
    end (`:ci95_hi`), a threat model's key (`:query`) or a release ratio's key (`:R0.5`): they
    share their metric's range."""
    base = "/".join(key.split(":")[0].split("/")[:2])
    return (METRICS | PROXY_METRICS).get(base)


# What an attacker knows (`trainables.attacks.base.Attack.threat`, docs/metrics.md):
# - white_box: the client's weights and the release mechanism;
# - query: can release its own images through the deployed client;
# - no_query: auxiliary data of the same distribution and observed releases, no client access;
# - architecture_only: the client's architecture, not its weights.
THREAT_MODELS = ("white_box", "query", "no_query", "architecture_only")
# The strongest attacker of one threat model, by attacker role: `privacy/leak_acc:<threat>`,
# `recon/ssim:<threat>`. A colon, not the `@` one would write: MLflow refuses `@` in a metric key.
THREAT_METRICS = {"leakage": "privacy/leak_acc", "reconstruction": "recon/ssim"}


def threat_key(metric: str, threat: str) -> str:
    return f"{metric}:{threat}"


# `<key>:ci95_lo`, `<key>:ci95_hi`: a final metric's 95 % interval. A colon never occurs in
# an attacker name (so no per-attacker key ends this way), and MLflow allows it in keys.
INTERVAL_LOW, INTERVAL_HIGH = ":ci95_lo", ":ci95_hi"


def is_interval_key(key: str) -> bool:
    return key.endswith((INTERVAL_LOW, INTERVAL_HIGH))


# MLflow tags (docs/design.md, "MLflow layout").
ROLE_TAG = "privsweep.role"  # "sweep" on a launch's parent run, "trial" on a trial's run
KIND_TAG = "privsweep.kind"  # on a parent run: "sweep" or "confirm"
LAUNCH_TAG = "privsweep.launch"  # the launch id, on the parent and on each of its trials
METHOD_TAG = "privsweep.method"
TRIAL_ID_TAG = "privsweep.trial_id"
OBJECTIVES_TAG = "privsweep.objectives"  # on a parent run: the spec's objectives, JSON
ERROR_TAG = "privsweep.error"  # on a FAILED trial: `Type: message`
PARETO_TAG = "privsweep.pareto"  # "true" on exactly the front's runs (set by `analysis pareto`)
CONFIG_ID_TAG = "privsweep.config_id"  # shared by the seed replicates of one configuration
REPLICATE_TAG = "privsweep.replicate"  # r: the run used train.seed + r
ASSIGNMENT_TAG = "privsweep.assignment"  # the searcher's assignment, JSON: what `sweeps confirm` re-runs
CONTROL_TAG = "privsweep.control"  # JSON {"method", "shared": [params.<name>]}: the run's same-budget control
PLANNED_RUNS_TAG = "privsweep.planned_runs"  # on a launch's parent run: the child runs it set out to finish
DEVICE_TAG = "privsweep.device"  # where the trial ran: `cpu`, or `cuda <name> <uuid>` (the GPU itself, as Ray shares it)
STARTS_TAG = "privsweep.starts"  # each start of the run's training, one line each: `<node IP> <node id> from epoch <n>`
STATE_SET_ASIDE_TAG = "privsweep.state_set_aside"  # `<file>.corrupt-<time>: why`: the run's state file could not be used, it restarted
NOTE_TAG = "mlflow.note.content"  # a run's or experiment's description in the MLflow UI (markdown)
SCREENED_TAG = "privsweep.screened"  # "true" on a run stopped after its screening attack (`search.screen`)
# A screened run's metrics: the screening attack's values under `screen/<key>`, never as final keys.
SCREEN_PREFIX = "screen/"


class Start(NamedTuple):
    """One start of a trial run's training: a line of its `STARTS_TAG`."""

    node_ip: str
    node_id: str  # the Ray node id's first 8 hex digits
    epoch: int  # the epoch its training went on from (0: from scratch)

    def line(self) -> str:
        return f"{self.node_ip} {self.node_id} from epoch {self.epoch}"


def parse_starts(tag: str) -> list[Start]:
    """A run's `STARTS_TAG`, one `Start` per line, oldest first."""
    return [Start(ip, node, int(epoch)) for ip, node, _, _, epoch in map(str.split, tag.splitlines())]


# A trial's per-epoch curves are `train/<loss>`, `val/<signal>`; of the `train/` keys, these are
# logged once, at the end: how the defense's training ended (docs/metrics.md, "Cost").
TRAINING_OUTCOME_PREFIXES = ("train/epochs_run", "train/converged", "train/window_epochs", "train/lr_halvings/", "train/task_model/")

# Keys of the trainable's reports to Ray Tune, which the searcher, the progress table and the
# launcher read (here, so they need not import the trainable, Ray and torch to get them).
FINAL_KEY = "privsweep/final"
SCREENED_KEY = "privsweep/screened"  # in the last report of a screened trial: the searcher is told PRUNED
REPLICATES_KEY = "privsweep/replicates"  # in the final report: how many seeds its mean is over

# Schema metadata keys of the analysis' run tables (kept through Parquet).
TABLE_TRACKING_URI_KEY = b"privsweep.tracking_uri"
TABLE_EXPERIMENTS_KEY = b"privsweep.experiments"


def tag_is(tag: str, value: str) -> str:
    """An MLflow search filter clause: the run's `tag` equals `value`."""
    return f"tags.`{tag}` = '{value}'"


# Params' symbols in run names, labels and tables (`σ=2 λ=0.1 split=3`).
PARAM_SYMBOLS = {"sigma": "σ", "lambda": "λ", "lambda1": "λ1", "lambda2": "λ2", "rho": "ρ", "alpha": "α",
                 "epsilon": "ε", "mu1": "μ1", "mu2": "μ2", "pruning_ratio": "R"}
