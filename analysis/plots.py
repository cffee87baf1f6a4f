"""Privacy-utility pictures (matplotlib; plotly optional for an interactive HTML).

`plot_pareto`: x = the privacy objective (leakage accuracy, lower is better), y = utility;
every trial a faint point coloured by method, each method's front a thin staircase, the
combined front bold, the no-defense trials starred, the ideal corner marked. Attack
strength is drawn too: a red cross on a trial whose strongest attacker hit its epoch cap
(its privacy number is a lower bound), an orange square round a trial whose defense hit its
epoch cap before it converged (`train/converged` = 0: undertrained), a hollow marker joined to a front point where the
method's own adversary reported a different number (proxy beside fresh), and the leakage
floor (what perfect utility forces) as a dashed line. Each trial's 95 % test-set bootstrap
interval is drawn on both axes where the runs logged one (bold on the combined front), and
each combined-front point is labelled with its swept values. The axes fit the data; a
chance rate or floor outside it is noted at the edge it lies beyond, not drawn.
`plot_pareto_3d`: the same axes with colour = a third objective. `plot_front` picks one.
`plot_hypervolume`: hypervolume against trials completed, combined and per method: how fast
the sweep found its front, and whether it was still finding it at the end.
Figures are `matplotlib.figure.Figure` objects (no pyplot state): save with `fig.savefig`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from analysis.intervals import interval
from analysis.labels import (
    axis_label,
    describe_params,
    format_value,
    metric_label,
    short_metric,
    swept_params,
)
from analysis.objectives import Objective, ObjectivesLike, parse_objectives
from analysis.pareto import (
    as_table,
    hypervolume_curves,
    hypervolumes,
    objective_values,
    pareto_mask,
    resolve_reference,
)
from analysis.runs import table_experiments
from analysis.strength import FLOOR, PROXY_OF, column, defense_unconverged, unconverged

BASELINE = "none"
BASELINE_COLOUR = "#3a3a3a"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22"]
METHOD_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]


def method_colours(methods: list[str]) -> dict[str, str]:
    """Stable colours: the no-defense method dark grey, the others a palette in sorted order."""
    others = sorted(m for m in set(methods) if m != BASELINE)
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(others)}
    colours[BASELINE] = BASELINE_COLOUR
    return colours


def axes_objectives(objectives: ObjectivesLike) -> tuple[Objective, Objective, tuple[Objective, ...]]:
    """(x, y, rest): y is the utility objective if there is one, x the other (privacy) one."""
    objectives = parse_objectives(objectives)
    if len(objectives) < 2:
        raise ValueError("a privacy-utility plot needs at least two objectives")
    first, second, rest = objectives[0], objectives[1], objectives[2:]
    if second.metric.startswith("utility/") and not first.metric.startswith("utility/"):
        return first, second, rest
    return second, first, rest


def _staircase(ax: Any, xs: np.ndarray, ys: np.ndarray, x_obj: Objective, **style: Any) -> None:
    """Boundary of the region the points dominate: sorted best-x first, a step after each."""
    order = np.argsort(xs if not x_obj.maximise else -xs, kind="stable")
    ax.step(xs[order], ys[order], where="post", **style)


def _better_corner(ax: Any, x_obj: Objective, y_obj: Objective) -> None:
    x = 0.03 if not x_obj.maximise else 0.97
    y = 0.97 if y_obj.maximise else 0.03
    arrow = ("↖" if y_obj.maximise else "↙") if not x_obj.maximise else ("↗" if y_obj.maximise else "↘")
    ax.text(x, y, f"{arrow} better" if x < 0.5 else f"better {arrow}", transform=ax.transAxes,
            ha="left" if x < 0.5 else "right", va="top" if y > 0.5 else "bottom",
            fontsize=11, fontweight="bold", color="#2a7f2a")


REFERENCE_STYLES = {  # one style per reference line, so the legend tells them apart
    "privacy/leak_chance": {"color": "#777777", "linestyle": ":", "linewidth": 1.4},
    "utility/chance": {"color": "#4a6fa5", "linestyle": "-.", "linewidth": 1.2},
    FLOOR: {"color": "#b03030", "linestyle": "--", "linewidth": 1.2},
}


def _median(table: pa.Table, metric: str) -> float | None:
    values = column(table, metric)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def _limits(values: list[np.ndarray], margin: float = 0.07) -> tuple[float, float] | None:
    """The data's range, widened by `margin` of it on each side (None without finite data)."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    if not finite.size:
        return None
    low, high = float(finite.min()), float(finite.max())
    pad = margin * (high - low) if high > low else max(abs(high) * 0.05, 0.01)
    return low - pad, high + pad


def _reference_lines(ax: Any, table: pa.Table, x_obj: Objective, y_obj: Objective,
                     x_limits: tuple[float, float] | None, y_limits: tuple[float, float] | None) -> list[Line2D]:
    """Chance rates and the leakage floor: a line where it falls inside the data's range,
    else a note at the edge it lies beyond (the axes stay fitted to the data: a chance line
    far below would squash the front into the top of the plot)."""
    lines = []
    if x_obj.metric.startswith("privacy/leak_acc"):
        lines += [("privacy/leak_chance", True, "private-attribute chance (perfect privacy)"),
                  (FLOOR, True, "leakage floor (task label alone)")]
    if y_obj.metric.startswith("utility/acc"):
        lines.append(("utility/chance", False, "task chance rate"))
    handles, notes = [], {"left": [], "right": [], "below": [], "above": []}
    for metric, vertical, label in lines:
        value, limits = _median(table, metric), x_limits if vertical else y_limits
        if value is None or limits is None:
            continue
        style = REFERENCE_STYLES[metric]
        if limits[0] <= value <= limits[1]:
            (ax.axvline if vertical else ax.axhline)(value, **style)
            handles.append(Line2D([], [], label=f"{label}: {value:.2f}", **style))
            continue
        side = ("left" if value < limits[0] else "right") if vertical else ("below" if value < limits[0] else "above")
        notes[side].append((f"{label.split(' (')[0]} {value:.2f}", style["color"]))
        handles.append(Line2D([], [], label=f"{label}: {value:.2f}, off the axes ({side})", **style))
    # Stacked under the "better" label: no trial sits in the corner beyond the front.
    x, y = (0.03 if not x_obj.maximise else 0.97), (0.97 if y_obj.maximise else 0.03)
    arrows = {"left": "←", "right": "→", "below": "↓", "above": "↑"}
    entries = [(f"{arrows[side]} {text}", colour) for side, found in notes.items() for text, colour in found]
    for index, (text, colour) in enumerate(entries, start=1):
        ax.text(x, y - 0.055 * index if y > 0.5 else y + 0.055 * index, text, transform=ax.transAxes,
                ha="left" if x < 0.5 else "right", va="top" if y > 0.5 else "bottom", fontsize=8.5, color=colour)
    return handles


def _front_labels(ax: Any, table: pa.Table, xs: np.ndarray, ys: np.ndarray, front: np.ndarray) -> None:
    """Each combined-front point's swept values (`σ=1.3 λ=0.02 split=2`)."""
    swept = swept_params(table)
    if not swept:
        return
    records = table.select(swept).to_pylist()
    middle = (np.nanmin(xs[front]) + np.nanmax(xs[front])) / 2 if front.any() else 0.0
    for row in np.flatnonzero(front):
        text = describe_params(records[row], swept)
        if text:  # right of the point, or left of it in the right half (so it stays inside the axes)
            right_half = xs[row] > middle
            ax.annotate(text, (xs[row], ys[row]), xytext=(-7 if right_half else 7, -7), textcoords="offset points",
                        ha="right" if right_half else "left", va="top", fontsize=7.5, color="#222222", zorder=8,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.75})


def _attack_strength(ax: Any, table: pa.Table, x_obj: Objective, xs: np.ndarray, ys: np.ndarray, valid: np.ndarray,
                     front: np.ndarray, colours: list[str]) -> list[Line2D]:
    """Red crosses on trials whose strongest attacker hit its cap, orange squares round those
    whose defense hit its cap; each front point's own-adversary (proxy) value."""
    handles = []
    undertrained = defense_unconverged(table) & valid
    if undertrained.any():
        ax.scatter(xs[undertrained], ys[undertrained], s=110, marker="s", facecolors="none", edgecolors="#e07b00",
                   linewidths=1.6, zorder=9)
        handles.append(Line2D([], [], linestyle="none", marker="s", markerfacecolor="none", color="#e07b00", markersize=9,
                              label=f"defense at its epoch cap: undertrained ({int(undertrained.sum())})"))
    capped = unconverged(table, x_obj.metric) & valid
    if capped.any():  # a caret on the side the true value lies: a stronger attacker could only leak more
        worse = 4 if x_obj.maximise else 5  # CARETLEFT, CARETRIGHT
        ax.scatter(xs[capped], ys[capped], s=90, marker=worse, color="#333333", zorder=9)
        handles.append(Line2D([], [], linestyle="none", marker=worse, color="#333333", markersize=9,
                              label=f"attacker at its epoch cap: a lower bound, true value on the caret's side ({int(capped.sum())})"))
    proxy_key = PROXY_OF.get(x_obj.metric)
    proxy = column(table, proxy_key) if proxy_key else np.full(len(xs), np.nan)
    shown = front & valid & np.isfinite(proxy)
    for row in np.flatnonzero(shown):
        ax.plot([proxy[row], xs[row]], [ys[row], ys[row]], color=colours[row], linestyle=":", linewidth=1.0, zorder=3)
        ax.scatter([proxy[row]], [ys[row]], s=60, facecolors="none", edgecolors=colours[row], linewidths=1.4, zorder=4)
    if shown.any():
        handles.append(Line2D([], [], linestyle=":", marker="o", markerfacecolor="none", color="#555555",
                              label="front point as its own adversary saw it (proxy)"))
    return handles


def _error_bars(ax: Any, table: pa.Table, x_obj: Objective, y_obj: Objective, xs: np.ndarray, ys: np.ndarray,
                valid: np.ndarray, front: np.ndarray, colours: list[str]) -> list[Line2D]:
    """Each trial's 95 % interval on both axes, drawn end to end (a max over attackers need
    not sit in the middle of its interval): bold on the combined front, faint elsewhere."""
    x_low, x_high = interval(table, x_obj.metric)
    y_low, y_high = interval(table, y_obj.metric)
    drawn = False
    for on_front, width, alpha in ((False, 0.8, 0.35), (True, 1.5, 0.9)):
        rows = valid & (front == on_front)
        horizontal = rows & np.isfinite(x_low) & np.isfinite(x_high)
        vertical = rows & np.isfinite(y_low) & np.isfinite(y_high)
        row_colours = np.asarray(colours, dtype=object)
        if horizontal.any():
            ax.hlines(ys[horizontal], x_low[horizontal], x_high[horizontal], colors=list(row_colours[horizontal]),
                      linewidths=width, alpha=alpha, zorder=3 if on_front else 1)
        if vertical.any():
            ax.vlines(xs[vertical], y_low[vertical], y_high[vertical], colors=list(row_colours[vertical]),
                      linewidths=width, alpha=alpha, zorder=3 if on_front else 1)
        drawn |= bool(horizontal.any() or vertical.any())
    if not drawn:
        return []
    return [Line2D([], [], color="#555555", linewidth=1.5, label="95 % interval, each axis (test-set bootstrap; over seeds: of their mean)")]


def _title(ax: Any, table: pa.Table, title: str | None, default: str) -> None:
    experiments = table_experiments(table)
    ax.set_title(title or (f"{default}: {', '.join(experiments)}" if experiments else default), fontsize=13, loc="left")


def plot_pareto(
    table: Any,
    objectives: ObjectivesLike = None,
    *,
    reference: Any = None,
    title: str | None = None,
    baseline: str = BASELINE,
    ax: Any = None,
) -> Figure:
    """The privacy (x) vs utility (y) picture for the first two objectives (see module doc).

    The legend gives each method's trials, front size and hypervolume (against `reference`,
    default `default_reference`).
    """
    table = as_table(table)
    objectives = parse_objectives(objectives)
    x_obj, y_obj, _ = axes_objectives(objectives)
    pair = (x_obj, y_obj)
    values = objective_values(table, pair)
    xs, ys = values[:, 0], values[:, 1]
    valid = np.isfinite(xs) & np.isfinite(ys)
    methods = np.asarray([str(m) for m in table.column("method").to_pylist()], dtype=object)
    colours = method_colours(list(methods))
    own_front = pareto_mask(table, pair, by="method")
    combined = pareto_mask(table, pair)
    volumes = hypervolumes(table, (y_obj, x_obj), reference=None if reference is None else _pick(reference, objectives, (y_obj, x_obj)))

    own_figure = ax is None
    if own_figure:
        fig = Figure(figsize=(10, 8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    handles: list[Any] = []
    for method in sorted(set(methods), key=lambda m: (m != baseline, m)):
        rows = (methods == method) & valid
        colour = colours[method]
        ax.scatter(xs[rows], ys[rows], s=34, color=colour, alpha=0.4, linewidths=0, zorder=2)
        front = rows & own_front
        if front.any():
            _staircase(ax, xs[front], ys[front], x_obj, color=colour, linewidth=1.5, alpha=0.85, zorder=3)
            ax.scatter(xs[front], ys[front], s=36, color=colour, alpha=0.95, edgecolors="white", linewidths=0.6, zorder=4)
        label = f"{method}: {int((methods == method).sum())} trials, front {int(front.sum())}, HV {volumes.get(method, 0.0):.3f}"
        handles.append(Line2D([], [], color=colour, marker="o", linewidth=1.5, label=label))
    if combined.any():
        _staircase(ax, xs[combined], ys[combined], x_obj, color="black", linewidth=2.8, zorder=5)
        ax.scatter(xs[combined], ys[combined], s=95, c=[colours[m] for m in methods[combined]], edgecolors="black",
                   linewidths=1.8, zorder=6)
        handles.append(Line2D([], [], color="black", linewidth=2.8, marker="o", markerfacecolor="white",
                              markersize=9, label=f"combined front ({int(combined.sum())} trials, fill = method)"))
    base = (methods == baseline) & valid
    if base.any():
        ax.scatter(xs[base], ys[base], s=320, marker="*", color="#ffd400", edgecolors="black", linewidths=1.2, zorder=7)
        best = np.flatnonzero(base)[np.argmax(ys[base] if y_obj.maximise else -ys[base])]
        ax.annotate("no defense", (xs[best], ys[best]), xytext=(-12, 10), textcoords="offset points",
                    ha="right", fontsize=10, fontweight="bold", zorder=8)
        handles.append(Line2D([], [], linestyle="none", marker="*", markersize=16, markerfacecolor="#ffd400",
                              markeredgecolor="black", label=f"no defense ({baseline!r})"))
    x_low, x_high = interval(table, x_obj.metric)
    y_low, y_high = interval(table, y_obj.metric)
    proxy_key = PROXY_OF.get(x_obj.metric)
    proxies = column(table, proxy_key) if proxy_key else np.full(len(xs), np.nan)
    x_limits = _limits([xs[valid], x_low[valid], x_high[valid], proxies[valid & combined]])
    y_limits = _limits([ys[valid], y_low[valid], y_high[valid]])
    handles += _reference_lines(ax, table, x_obj, y_obj, x_limits, y_limits)
    handles += _error_bars(ax, table, x_obj, y_obj, xs, ys, valid, combined, [colours[m] for m in methods])
    handles += _attack_strength(ax, table, x_obj, xs, ys, valid, combined, [colours[m] for m in methods])
    _front_labels(ax, table, xs, ys, combined & valid)
    hidden = int((~valid).sum())
    if hidden:
        handles.append(Line2D([], [], linestyle="none", label=f"{hidden} trial(s) without finite values: not shown"))

    ax.set_xlabel(axis_label(x_obj, "← " if not x_obj.maximise else "→ "), fontsize=11)
    ax.set_ylabel(axis_label(y_obj, "↑ " if y_obj.maximise else "↓ "), fontsize=11)
    ax.grid(True, alpha=0.25)
    if x_limits is not None and y_limits is not None:
        ax.set_xlim(*x_limits)
        ax.set_ylim(*y_limits)
    _better_corner(ax, x_obj, y_obj)
    _title(ax, table, title, "Privacy–utility Pareto front")
    legend = {"handles": handles, "frameon": False, "title": "method: trials, own front, hypervolume", "title_fontsize": 9,
              "alignment": "left"}
    if own_figure:  # below the axes, so the front gets the figure's whole width
        fig.legend(loc="outside lower center", ncols=2, fontsize=8.5, **legend)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, **legend)
    return fig


def plot_trial_on_front(table: Any, run_id: str, objectives: ObjectivesLike = None) -> Figure:
    """`plot_pareto` of `table` (a launch's finished trials so far) with trial `run_id` ringed
    and labelled: the figure a trial's own MLflow page shows (`front_so_far.png`)."""
    table = as_table(table)
    ids = table.column("run_id").to_pylist()
    x_obj, y_obj, _ = axes_objectives(parse_objectives(objectives))
    fig = plot_pareto(table, objectives, title=f"This trial (ringed) among its launch's {len(ids)} finished trial(s) so far")
    point = objective_values(table, (x_obj, y_obj))[ids.index(run_id)] if run_id in ids else np.full(2, np.nan)
    ax = fig.axes[0]
    if np.isfinite(point).all():
        ax.scatter(*point, s=650, facecolors="none", edgecolors="red", linewidths=2.5, zorder=9)
        ax.annotate("this trial", tuple(point), xytext=(-14, 14), textcoords="offset points", ha="right", color="red",
                    fontsize=11, fontweight="bold", zorder=9)
    else:
        ax.text(0.5, 0.5, "this trial has no finite objective values", transform=ax.transAxes, ha="center", color="red")
    return fig


def _pick(reference: Any, objectives: tuple[Objective, ...], wanted: tuple[Objective, ...]) -> list[float]:
    """The reference values of `wanted` out of a reference given for `objectives`."""
    if isinstance(reference, dict):
        return [reference[o.metric] for o in wanted]
    point = list(np.asarray(reference, dtype=float).reshape(-1))
    return [point[objectives.index(o)] for o in wanted]


def plot_pareto_3d(
    table: Any,
    objectives: ObjectivesLike,
    *,
    title: str | None = None,
    baseline: str = BASELINE,
    cmap: str = "viridis",
) -> Figure:
    """Three objectives: x/y as in `plot_pareto`, colour = the third objective.

    Marker shape = method; the points on the 3-objective front have a thick black edge.
    """
    table = as_table(table)
    objectives = parse_objectives(objectives)
    x_obj, y_obj, rest = axes_objectives(objectives)
    if not rest:
        raise ValueError("plot_pareto_3d needs three objectives; use plot_pareto for two")
    c_obj = rest[0]
    values = objective_values(table, (x_obj, y_obj, c_obj))
    valid = np.all(np.isfinite(values), axis=1)
    front = pareto_mask(table, (x_obj, y_obj, c_obj))
    methods = np.asarray([str(m) for m in table.column("method").to_pylist()], dtype=object)
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    ax = fig.add_subplot()
    finite_c = values[valid, 2]
    vmin, vmax = (float(finite_c.min()), float(finite_c.max())) if finite_c.size else (0.0, 1.0)
    # Colour scale oriented so that the bright end is the better end of the third objective.
    colormap = cmap if c_obj.maximise else f"{cmap}_r"
    handles: list[Any] = []
    mappable = None
    for index, method in enumerate(sorted(set(methods), key=lambda m: (m != baseline, m))):
        rows = (methods == method) & valid
        marker = "*" if method == baseline else METHOD_MARKERS[index % len(METHOD_MARKERS)]
        size = 220 if method == baseline else 60
        for on_front in (False, True):
            pick = rows & (front == on_front)
            if not pick.any():
                continue
            mappable = ax.scatter(values[pick, 0], values[pick, 1], c=values[pick, 2], cmap=colormap, vmin=vmin, vmax=vmax,
                                  marker=marker, s=size * (1.4 if on_front else 1), alpha=1.0 if on_front else 0.55,
                                  edgecolors="black" if on_front else "none", linewidths=2.0 if on_front else 0, zorder=4 if on_front else 2)
        handles.append(Line2D([], [], linestyle="none", marker=marker, color="#777777", markersize=9 if method != baseline else 14,
                              label=f"{method} ({int((methods == method).sum())} trials)"))
    handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="black",
                          markeredgewidth=2, markersize=10, label=f"on the 3-objective front ({int(front.sum())})"))
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=ax, pad=0.01)
        bar.set_label(axis_label(c_obj, ""), fontsize=10)
    ax.set_xlabel(axis_label(x_obj, "← " if not x_obj.maximise else "→ "), fontsize=11)
    ax.set_ylabel(axis_label(y_obj, "↑ " if y_obj.maximise else "↓ "), fontsize=11)
    ax.grid(True, alpha=0.25)
    _better_corner(ax, x_obj, y_obj)
    _title(ax, table, title, f"Pareto front (colour = {short_metric(c_obj.metric)})")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=3, frameon=False, fontsize=9)
    return fig


def plot_front(table: Any, objectives: ObjectivesLike = None, **kwargs: Any) -> Figure:
    """`plot_pareto` for two objectives, `plot_pareto_3d` (first three) for more."""
    objectives = parse_objectives(objectives)
    if len(objectives) >= 3:
        kwargs.pop("reference", None)
        return plot_pareto_3d(table, objectives, **kwargs)
    return plot_pareto(table, objectives, **kwargs)


def plot_hypervolume(table: Any, objectives: ObjectivesLike = None, *, reference: Any = None, title: str | None = None,
                     baseline: str = BASELINE) -> Figure:
    """Hypervolume (all objectives, one reference point) after each completed trial, in the
    order the trials started: the combined front thick grey, each method's own front on top."""
    table = as_table(table)
    objectives = parse_objectives(objectives)
    point = resolve_reference(table, objectives, reference)
    curves = hypervolume_curves(table, objectives, point)
    # each value holds from its trial to the next; the last one to the right edge
    trials = np.append(np.arange(1, table.num_rows + 1), table.num_rows + 0.5)
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    methods = [m for m in curves if m != "all"]
    colours = method_colours(methods)
    ax.step(trials, np.append(curves["all"], curves["all"][-1:]), where="post", color="0.75", linewidth=5,
            label=f"combined: {curves['all'][-1]:.3f}", zorder=1)
    for method in sorted(methods, key=lambda m: (m != baseline, m)):
        ax.step(trials, np.append(curves[method], curves[method][-1:]), where="post", color=colours[method],
                linewidth=1.6, label=f"{method}: {curves[method][-1]:.3f}", zorder=2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials completed (in the order they started)", fontsize=11)
    ax.set_ylabel("hypervolume (higher is better)", fontsize=11)
    ax.set_xlim(0.5, max(table.num_rows, 1) + 0.5)
    ax.grid(True, alpha=0.25)
    reference_text = ", ".join(f"{o.metric}={p:g}" for o, p in zip(objectives, point, strict=True))
    _title(ax, table, title, "Hypervolume over trials")
    ax.text(0.0, -0.16, f"objectives {', '.join(str(o) for o in objectives)}; reference {reference_text}",
            transform=ax.transAxes, fontsize=8, color="0.35")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9, title="final hypervolume",
              title_fontsize=9, alignment="left")
    return fig


def plot_interactive(table: Any, objectives: ObjectivesLike = None, path: Any = None) -> Any:
    """An interactive plotly scatter (hover: run, method, objectives, swept params); optional.

    Needs `plotly` (`pip install plotly`); writes a self-contained HTML file when `path` is given.
    """
    try:
        import plotly.graph_objects as go
    except ImportError as error:
        raise ImportError("the interactive plot needs plotly: pip install plotly") from error
    table = as_table(table)
    objectives = parse_objectives(objectives)
    x_obj, y_obj, _ = axes_objectives(objectives)
    values = objective_values(table, (x_obj, y_obj))
    combined = pareto_mask(table, objectives)
    rows = table.to_pylist()
    swept = swept_params(table)
    methods = [str(m) for m in table.column("method").to_pylist()]
    colours = method_colours(methods)
    figure = go.Figure()
    for method in sorted(set(methods), key=lambda m: (m != BASELINE, m)):
        pick = [i for i, m in enumerate(methods) if m == method and np.all(np.isfinite(values[i]))]
        hover = [
            "<br>".join([f"<b>{method}</b> {rows[i]['run_name'] or ''}", f"run {rows[i]['run_id']}"]
                        + [f"{o.metric} = {format_value(rows[i].get(o.metric))}" for o in objectives]
                        + [describe_params(rows[i], swept)] + (["<b>on the combined front</b>"] if combined[i] else []))
            for i in pick
        ]
        figure.add_trace(go.Scatter(
            x=values[pick, 0], y=values[pick, 1], mode="markers", name=method, hovertext=hover, hoverinfo="text",
            marker={"color": colours[method], "size": [14 if combined[i] else 8 for i in pick],
                    "symbol": "star" if method == BASELINE else "circle",
                    "line": {"color": "black", "width": [2 if combined[i] else 0 for i in pick]}},
        ))
    figure.update_layout(
        title="Privacy–utility Pareto front (hover for params; ringed points are on the combined front)",
        xaxis_title=f"{metric_label(x_obj.metric)} ({'lower' if not x_obj.maximise else 'higher'} is better)",
        yaxis_title=f"{metric_label(y_obj.metric)} ({'higher' if y_obj.maximise else 'lower'} is better)",
        template="plotly_white",
    )
    if path is not None:
        figure.write_html(str(path), include_plotlyjs=True)
    return figure
