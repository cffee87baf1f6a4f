"""Files a finished trial leaves: config.yaml, metrics.json, summary.md (`trial_summary`, also
the run's description in MLflow), reconstructions.png, curves.png (its defense's and
attackers' curves, `analysis.curves`), client.pt; in a sweep also front_so_far.png (its point
on its launch's front, `analysis.plots.plot_trial_on_front`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import yaml
from matplotlib.figure import Figure
from torchmetrics.functional.image import structural_similarity_index_measure

from trainables.attacks.suite import AttackReport
from trainables.config import TrialConfig
from trainables.methods.base import Method
from trainables.schema import INTERVAL_HIGH, INTERVAL_LOW, THREAT_METRICS, THREAT_MODELS, threat_key

RECONSTRUCTIONS_DPI = 100
FRONT_POINT = "front_so_far.png"
SUMMARY = "summary.md"
HEADLINE = ("utility/acc", "privacy/leak_acc", "recon/ssim", "recon/ssim/whitebox")  # summarised whatever the objectives
ATTACKER_FAMILIES = (("privacy/leak_acc/", "leakage"), ("recon/ssim/", "reconstruction"))  # (per-attacker key prefix, family)
PROXIES = ("privacy/proxy_leak_acc", "recon/proxy_ssim")
THREAT_FAMILIES = (("leakage", THREAT_METRICS["leakage"]), ("SSIM", THREAT_METRICS["reconstruction"]))


def reconstruction_figure(report: AttackReport) -> Figure:
    """A labelled figure, legible at MLflow's preview size: the gallery's originals (top row)
    above the strongest reconstruction attacker's reconstructions (bottom row), each with
    its SSIM, titled with the attacker and the trial's `recon/ssim`."""
    count = len(report.originals)
    scores = structural_similarity_index_measure(
        report.reconstructions.float(), report.originals.float(), data_range=1.0, reduction="none",
        kernel_size=min(11, *report.originals.shape[-2:]) // 2 * 2 - 1,  # odd, and no larger than the image
    )
    # About 600 px wide for 8 images: MLflow's artifact view shows it near its own size, so
    # the 9-point labels stay legible (at 1,200 px it was scaled to half and they were not).
    figure = Figure(figsize=(max(4.5, 0.7 * count + 0.7), 2.4), layout="constrained")
    axes = figure.subplots(2, count, squeeze=False)
    for column in range(count):
        for row, images in enumerate((report.originals, report.reconstructions)):
            ax = axes[row, column]
            picture = images[column].permute(1, 2, 0).clamp(0, 1).numpy()
            ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1, column].set_xlabel(f"SSIM {scores[column].item():.2f}", fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=9)
    axes[1, 0].set_ylabel("reconstructed", fontsize=9)
    ssim = report.metrics.get("recon/ssim")
    overall = f"\nrecon/ssim {ssim:.3f} over the test images" if ssim is not None else ""
    figure.suptitle(f"{report.decoder}: the strongest reconstruction attacker{overall}", fontsize=10)
    return figure


def save_reconstructions(report: AttackReport, path: Path) -> None:
    if len(report.originals):
        reconstruction_figure(report).savefig(path, dpi=RECONSTRUCTIONS_DPI)


def curves_figure(history: Sequence[dict[str, float]], report: AttackReport, metrics: dict, method: Method) -> Figure:
    """The defense's per-epoch curves (`history`) above the attackers' (`report.curves`)."""
    from analysis.curves import (
        ATTACK_CURVE,
        epoch_series,
        kept_epochs,
        plot_defense_curves,
        stop_label,
    )

    series = epoch_series(history)
    series.update({ATTACK_CURVE + attacker: list(enumerate(scores, start=1)) for attacker, scores in report.curves.items() if scores})
    converged = metrics.get("train/converged")
    stop = "" if converged is None else f": {stop_label(len(history), converged)}"
    return plot_defense_curves(series, f"defense{stop}", type(method).phases, converged, kept_epochs(metrics))


def trial_summary(metrics: Mapping[str, float], objectives: Sequence[str] = ()) -> str:
    """A finished trial at a glance, in markdown (its MLflow run's description, and
    `SUMMARY`): the objectives, then the HEADLINE keys, each with its 95 % interval; the
    strongest attacker of each family and of each threat model; the method's own adversaries; whether the defense and
    every learned attacker converged (one that stopped at its cap makes its number a bound).
    metrics.json holds every final value."""
    def number(value: float) -> str:
        return f"{value:.3f}"

    rows = ["| metric | value | 95 % interval |", "|---|---|---|"]
    for key in dict.fromkeys([*objectives, *HEADLINE]):
        if key in metrics:
            low, high = metrics.get(key + INTERVAL_LOW), metrics.get(key + INTERVAL_HIGH)
            interval = f"[{number(low)}, {number(high)}]" if low is not None and high is not None else "–"
            rows.append(f"| `{key}` | {number(metrics[key])} | {interval} |")
    lines = ["\n".join(rows), ""]
    strongest = []
    for prefix, kind in ATTACKER_FAMILIES:
        attackers = {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix) and ":" not in k}
        if attackers:
            best = max(attackers, key=attackers.get)  # accuracy and SSIM: higher is the stronger attack
            strongest.append(f"{kind} `{best}` ({number(attackers[best])})")
    if strongest:
        lines.append("- Strongest attackers: " + ", ".join(strongest) + ".")
    per_threat = [f"{threat}: " + ", ".join(f"{kind} {number(metrics[key])}" for kind, key in keys)
                  for threat in THREAT_MODELS
                  if (keys := [(kind, threat_key(metric, threat)) for kind, metric in THREAT_FAMILIES
                               if threat_key(metric, threat) in metrics])]
    if per_threat:
        lines.append("- Strongest per threat model (what the attacker knows, docs/metrics.md): " + "; ".join(per_threat) + ".")
    proxies = [f"`{key}` {number(metrics[key])}" for key in PROXIES if key in metrics]
    if proxies:
        lines.append("- The method's own adversaries: " + ", ".join(proxies) + ".")
    if "train/converged" in metrics:
        epochs = int(metrics.get("train/epochs_run", 0))
        lines.append(f"- Defense: {epochs} epochs, " + ("converged by its rule." if metrics["train/converged"] == 1
                                                        else "stopped at its epoch cap (not converged)."))
    flags = {k.removeprefix("attack/converged/"): v for k, v in metrics.items() if k.startswith("attack/converged/")}
    if flags:
        capped = sorted(attacker for attacker, converged in flags.items() if converged != 1)
        lines.append("- Learned attackers: " + (f"at their epoch cap: {', '.join(f'`{c}`' for c in capped)} "
                                              "(their numbers are lower bounds)." if capped else "all converged."))
    lines.append("- Every final value: `metrics.json`; curves: `curves.png`; the strongest reconstructions: "
                 "`reconstructions.png`.")
    return "\n".join(lines) + "\n"


def write_artifacts(folder: Path, config: TrialConfig, metrics: dict, report: AttackReport, method: Method,
                    history: Sequence[dict[str, float]], objectives: Sequence[str] = ()) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (folder / SUMMARY).write_text(trial_summary(metrics, objectives))
    save_reconstructions(report, folder / "reconstructions.png")
    if history:
        curves_figure(history, report, metrics, method).savefig(folder / "curves.png", dpi=RECONSTRUCTIONS_DPI)
    torch.save(method.client_network().state_dict(), folder / "client.pt")
    return sorted(folder.iterdir())


def write_front_point(folder: Path, tracking_uri: str, experiment: str, launch: str, run_id: str,
                      objectives: Sequence[tuple[str, str]]) -> Path:
    """`FRONT_POINT` in `folder`: run `run_id` (finished) on the front of its launch's finished
    trials; `objectives` as (metric, mode) pairs."""
    from analysis.plots import plot_trial_on_front
    from analysis.runs import load_runs

    table = load_runs(experiment, tracking_uri, launch=launch)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FRONT_POINT
    plot_trial_on_front(table, run_id, list(objectives)).savefig(path, dpi=RECONSTRUCTIONS_DPI)
    return path
