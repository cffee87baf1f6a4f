"""A defense's training curves: `python -m analysis curves --run RUN_ID [--out DIR]`.

One figure per trial (`plot_defense_curves`), from its per-epoch history (MLflow's metric
history of the run, or a stored benchmark trial's `curves`): the validation utility and every
proxy adversary's and the shadow attacker's validation score on the left, the training losses on the right, each phase
shaded and named, each halving of a game's learning rates (`defense/lr_scale`) drawn as a
dotted line labelled with the new rate ("lr x0.5"), and the epoch where training stopped
marked: "converged" when the convergence rule stopped the last phase, "cap" when it reached
`train.epochs`. When the history holds the attackers' curves (`val/attack/<attacker>`, step =
attack epoch), a second row shows them: the classifiers' validation accuracy (leakage
attackers, the retrained utility model) and the decoders' validation MSE, each attacker's
kept epoch (`attack/kept_epoch/<attacker>`, the one its test numbers come from) dotted.
Every trial logs this figure as `curves.png`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.errors import AnalysisInputError

VALIDATION = ("val/utility_acc", "val/proxy_leak_acc", "val/proxy_ssim", "val/shadow_leak_acc")
ATTACK_CURVE = "val/attack/"
KEPT_EPOCH = "attack/kept_epoch/"
PHASE = "defense/phase"
LR_SCALE = "defense/lr_scale"


def epoch_series(history: Sequence[Mapping[str, float]]) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(epoch, value)], epochs from 1, from a list of per-epoch metric dicts."""
    series: dict[str, list[tuple[int, float]]] = {}
    for epoch, metrics in enumerate(history, start=1):
        for key, value in metrics.items():
            series.setdefault(key, []).append((epoch, value))
    return series


def plot_defense_curves(series: Mapping[str, Sequence[tuple[int, float]]], title: str = "",
                        phases: Sequence[str] = (), converged: float | None = None,
                        kept: Mapping[str, float] | None = None) -> Figure:
    """Validation signals and training losses against the epoch; phases shaded, the stop
    marked; below them the attackers' curves when `series` has them (`kept`: attacker -> its
    kept epoch, `kept_epochs`)."""
    attackers = sorted(key.removeprefix(ATTACK_CURVE) for key in series if key.startswith(ATTACK_CURVE))
    figure = Figure(figsize=(11, 8.4 if attackers else 4.2), layout="constrained")
    axes = figure.subplots(2 if attackers else 1, 2)
    signals_ax, losses_ax = axes[0] if attackers else axes
    if attackers:
        _plot_attackers(axes[1], series, attackers, kept or {})
    for key in VALIDATION:
        if key in series:
            epochs, values = zip(*series[key], strict=True)
            signals_ax.plot(epochs, values, marker=".", label=key)
    losses = sorted(k for k in series if k.startswith("train/") and k != PHASE and "/" not in k.removeprefix("train/"))
    for key in losses:
        epochs, values = zip(*series[key], strict=True)
        losses_ax.plot(epochs, values, marker=".", label=key)
    signals_ax.set(xlabel="epoch", ylabel="validation score", title="validation: utility, the proxies, the shadow attacker")
    losses_ax.set(xlabel="epoch", ylabel="loss", title="training losses")
    last = max((epoch for values in series.values() for epoch, _ in values), default=0)
    for ax in (signals_ax, losses_ax):
        _shade_phases(ax, series.get(PHASE, []), phases)
        _mark_halvings(ax, series.get(LR_SCALE, []))
        if last:
            stop = {1.0: "converged", 0.0: "cap"}.get(converged, "stop")
            ax.axvline(last, color="#d01010" if converged == 0 else "#208020", linestyle="--", linewidth=1.2)
            ax.annotate(stop, (last, 1), xycoords=("data", "axes fraction"), xytext=(-4, -12), textcoords="offset points",
                        ha="right", fontsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5, loc="best")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _plot_attackers(axes: Sequence[Any], series: Mapping[str, Sequence[tuple[int, float]]], attackers: Sequence[str],
                    kept: Mapping[str, float]) -> None:
    """Classifiers' validation accuracy on the left, decoders' validation MSE (their curve is
    minus it) on the right, a dot at each attacker's kept epoch."""
    classifiers_ax, decoders_ax = axes
    for attacker in attackers:
        epochs, scores = zip(*series[ATTACK_CURVE + attacker], strict=True)
        decoder = attacker.startswith("recon/")
        ax = decoders_ax if decoder else classifiers_ax
        values = [-score for score in scores] if decoder else list(scores)
        (line,) = ax.plot(epochs, values, marker=".", label=attacker)
        epoch = kept.get(attacker)
        if epoch and int(epoch) in epochs:
            ax.plot([epoch], [values[epochs.index(int(epoch))]], "o", color=line.get_color(), markersize=5)
    classifiers_ax.set(xlabel="attack epoch", ylabel="validation accuracy", title="attackers: classifiers (dot: kept epoch)")
    decoders_ax.set(xlabel="attack epoch", ylabel="validation MSE", title="attackers: decoders (dot: kept epoch)")
    if decoders_ax.get_lines():
        decoders_ax.set_yscale("log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5, loc="best")


def _mark_halvings(ax: Any, scale_series: Sequence[tuple[int, float]]) -> None:
    """A dotted line before each epoch whose learning-rate scale fell below the epoch before's."""
    for (_, before), (epoch, scale) in itertools.pairwise(scale_series):
        if scale < before:
            ax.axvline(epoch - 0.5, color="#606060", linestyle=":", linewidth=1.0)
            ax.annotate(f"lr x{scale:g}", (epoch - 0.4, 0.93), xycoords=("data", "axes fraction"), fontsize=7, color="#606060")


def _shade_phases(ax: Any, phase_series: Sequence[tuple[int, float]], names: Sequence[str]) -> None:
    """Alternate shading per phase, each labelled with its name (or its index)."""
    if not phase_series:
        return
    starts: list[tuple[int, int]] = []
    for epoch, index in phase_series:
        if not starts or starts[-1][1] != int(index):
            starts.append((epoch, int(index)))
    ends = [start for start, _ in starts[1:]] + [phase_series[-1][0] + 1]
    for (start, index), end in zip(starts, ends, strict=True):
        if index % 2:
            ax.axvspan(start - 0.5, end - 0.5, color="#000000", alpha=0.06, linewidth=0)
        label = names[index] if index < len(names) else f"phase {index}"
        ax.annotate(label, (start - 0.4, 0.02), xycoords=("data", "axes fraction"), fontsize=7.5, color="#555555")


def run_series(uri: str, run_id: str) -> tuple[dict[str, list[tuple[int, float]]], dict[str, Any]]:
    """A run's per-epoch train/* and val/* histories (step = epoch; an attacker's curve: step =
    attack epoch) and its final metrics, params and name."""
    from trainables.tracking import tracking_client, with_retries

    client = tracking_client(uri)
    try:
        run = with_retries(lambda: client.get_run(run_id))
    except Exception as error:  # MLflow raises its own RestException/MlflowException for an unknown id
        raise AnalysisInputError(f"--run {run_id}: no such run in {uri} ({str(error).splitlines()[0]}); "
                                 "copy the run id from the MLflow UI (the run page's header).") from None
    series: dict[str, list[tuple[int, float]]] = {}
    for key in run.data.metrics:
        if key == PHASE or key.startswith(ATTACK_CURVE) or (key.startswith(("val/utility", "val/proxy", "train/")) and key.count("/") == 1):
            history = with_retries(lambda k=key: client.get_metric_history(run_id, k))
            points = sorted((m.step, m.value) for m in history)
            if len(points) > 1 or key in VALIDATION or key == PHASE or key.startswith(ATTACK_CURVE):
                series[key] = points
    if not any(key in series for key in VALIDATION):
        raise AnalysisInputError(f"--run {run_id}: the run has no per-epoch validation curves (val/utility_acc); "
                                 "is it a trial's run (not a sweep's parent run)?")
    info = {"name": run.info.run_name or run_id, "metrics": run.data.metrics, "method": run.data.params.get("method", "")}
    return series, info


def stop_label(epochs: float, converged: float | None) -> str:
    """`67 epochs, converged`: how a defense's training ended, for a figure's title."""
    return f"{epochs:.0f} epoch{'' if epochs == 1 else 's'}, {'converged' if converged == 1 else 'stopped at the cap'}"


def kept_epochs(metrics: Mapping[str, float]) -> dict[str, float]:
    """attacker -> the epoch its test numbers come from, from a trial's final metrics."""
    return {key.removeprefix(KEPT_EPOCH): value for key, value in metrics.items() if key.startswith(KEPT_EPOCH)}
