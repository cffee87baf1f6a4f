"""The final metric keys a trial config produces (docs/metrics.md), to check objectives up front."""

from __future__ import annotations

from trainables.attacks.suite import ratio_suffix
from trainables.bootstrap import interval_keys
from trainables.config import TrialConfig
from trainables.errors import did_you_mean
from trainables.metrics import HIGHER_IS_BETTER, lpips_unavailable_reason

BASE_KEYS = (
    "utility/acc", "utility/acc_retrained", "utility/mcc", "utility/chance",
    "privacy/leak_acc", "privacy/leak_chance", "privacy/leak_floor", "privacy/delta",
    "client/gflops", "client/params_mb", "time/train_s", "time/attack_s",
)
PER_RATIO_PREFIXES = ("utility/", "privacy/", "recon/")
# What a method says about itself: logged where the method has its own adversaries, never an
# objective (a defense tuned on its own adversary's numbers is the false sense of privacy).
PROXY_KEYS = ("privacy/proxy_leak_acc", "recon/proxy_ssim")


def final_metric_keys(config: TrialConfig) -> set[str]:
    keys = set(BASE_KEYS)
    keys.update(f"privacy/leak_acc/{name}" for name in config.attacks.leakage)
    recon_metrics = [m for m in HIGHER_IS_BETTER if m != "lpips" or lpips_unavailable_reason() is None]
    for metric in recon_metrics:
        keys.add(f"recon/{metric}")
        keys.update(f"recon/{metric}/{decoder}" for decoder in config.attacks.reconstruction)
    for ratio in config.attacks.release_ratios or []:
        keys.update(f"{key}{ratio_suffix(ratio)}" for key in list(keys) if key.startswith(PER_RATIO_PREFIXES))
    # every metric measured on the test split has its bootstrap interval (an objective may be
    # an interval end: minimising privacy/leak_acc:ci95_hi is minimising the pessimistic leakage)
    keys.update(end for key in list(keys) if key.startswith(PER_RATIO_PREFIXES) for end in interval_keys(key))
    return keys


def unknown_metric_reason(metric: str, config: TrialConfig) -> str | None:
    if metric in final_metric_keys(config):
        return None
    if metric.split(":")[0] in PROXY_KEYS:
        return (
            f"{metric} is the method's own training-time adversary evaluated on test, not a privacy objective "
            "(a defense can fool its own adversary and no other); use privacy/leak_acc or recon/ssim"
        )
    if metric.startswith("recon/lpips") and lpips_unavailable_reason():
        return f"{metric} cannot be computed here: {lpips_unavailable_reason()}"
    keys = sorted(final_metric_keys(config))
    return f"{metric} is not a final metric of this spec{did_you_mean(metric, keys)}; final metrics are {keys}"
