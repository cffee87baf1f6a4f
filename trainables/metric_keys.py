"""The final metric keys a trial config produces (docs/metrics.md), to check objectives up front."""

from __future__ import annotations

from trainables.attacks.registry import selected
from trainables.attacks.suite import ratio_suffix
from trainables.bootstrap import interval_keys
from trainables.config import TrialConfig
from trainables.errors import did_you_mean
from trainables.metrics import lpips_unavailable_reason
from trainables.schema import METRICS, PROXY_METRICS, RECON_METRICS, THREAT_METRICS, threat_key

PER_RATIO_PREFIXES = ("utility/", "privacy/", "recon/")


def final_metric_keys(config: TrialConfig) -> set[str]:
    attackers = selected(config.attacks)
    leakage = [name for name, cls in attackers.items() if cls.role == "leakage"]
    reconstruction = [name for name, cls in attackers.items() if cls.role == "reconstruction"]
    keys = {key for key in METRICS if not key.startswith("recon/")}
    keys.update(f"privacy/leak_acc/{name}" for name in leakage)
    recon_metrics = [m for m in RECON_METRICS if m != "lpips" or lpips_unavailable_reason() is None]
    for metric in recon_metrics:
        keys.add(f"recon/{metric}")
        keys.update(f"recon/{metric}/{decoder}" for decoder in reconstruction)
    keys.update(threat_key(THREAT_METRICS[cls.role], cls.threat) for cls in attackers.values())
    for ratio in config.attacks.release_ratios or []:
        keys.update(f"{key}{ratio_suffix(ratio)}" for key in list(keys) if key.startswith(PER_RATIO_PREFIXES))
    # every metric measured on the test split has its bootstrap interval (an objective may be
    # an interval end: minimising privacy/leak_acc:ci95_hi is minimising the pessimistic leakage)
    keys.update(end for key in list(keys) if key.startswith(PER_RATIO_PREFIXES) for end in interval_keys(key))
    return keys


def unknown_metric_reason(metric: str, config: TrialConfig) -> str | None:
    if metric in final_metric_keys(config):
        return None
    if metric.split(":")[0] in PROXY_METRICS:
        return (
            f"{metric} is the method's own training-time adversary evaluated on test, not a privacy objective "
            "(a defense can fool its own adversary and no other); use privacy/leak_acc or recon/ssim"
        )
    if metric.startswith("recon/lpips") and lpips_unavailable_reason():
        return f"{metric} cannot be computed here: {lpips_unavailable_reason()}"
    keys = sorted(final_metric_keys(config))
    # a qualified key (`:query`, `:ci95_hi`) is suggested only for a qualified metric: leak_accuracy means leak_acc
    candidates = keys if ":" in metric else [key for key in keys if ":" not in key]
    return f"{metric} is not a final metric of this spec{did_you_mean(metric, candidates)}; final metrics are {keys}"
