"""The tuner plots as PNGs (matplotlib, object API on the Agg canvas: no pyplot, no window).

The same data as the pareto.html figures (analysis/tuner_render.py), drawn for reports and
for readers without a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from analysis.tuner_plots import TunerPlots, history_note
from analysis.tuner_render import DOMINATED, EVALUATOR_COLOURS, EVALUATOR_NAMES, FRONT, label


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set(xticks=[], yticks=[])


def importance_png(plots: TunerPlots, path: Path) -> None:
    imp = plots.importance
    fig = _figure(5 * max(len(imp.objectives), 1), 3.8)
    axes = fig.subplots(1, max(len(imp.objectives), 1), squeeze=False)[0]
    fig.suptitle(f"Knob importance over {imp.n_trials} complete trials", fontsize=11)
    y = np.arange(len(imp.params))
    height = 0.8 / max(len(imp.values), 1)
    for ax, metric in zip(axes, imp.objectives, strict=False):
        ax.set_title(label(metric), fontsize=10)
        if not imp.values:
            _empty(ax, "not computed")
            continue
        for i, (evaluator, per_objective) in enumerate(imp.values.items()):
            shares = [per_objective[metric][p] for p in imp.params]
            name = EVALUATOR_NAMES.get(evaluator, evaluator)
            colour = EVALUATOR_COLOURS.get(evaluator)
            ax.barh(y + i * height, shares, height, label=name, color=colour)
        ax.set(yticks=y + height * (len(imp.values) - 1) / 2, yticklabels=imp.params, xlim=(0, 1))
        ax.set_xlabel("share of importance")
        ax.invert_yaxis()
        ax.legend(fontsize=8)
    if imp.note:
        fig.supxlabel(imp.note, fontsize=8, color="dimgray", wrap=True)
    fig.savefig(path, format="png")


def parallel_png(plots: TunerPlots, path: Path) -> None:
    """Each axis scaled to its own min..max; the extremes are written at its ends."""
    data = plots.parallel
    fig = _figure(max(6.0, 1.6 * len(data.axes)), 4.2)
    ax = fig.add_subplot()
    ax.set_title("Knobs and objectives (dark: on the Pareto front)", fontsize=11)
    if not data.ids:
        _empty(ax, "No complete MixTraining trial")
        fig.savefig(path, format="png")
        return
    values = np.array([a.values for a in data.axes], dtype=float)  # [axes, trials]
    low, high = values.min(axis=1, keepdims=True), values.max(axis=1, keepdims=True)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    xs = np.arange(len(data.axes))
    for j in np.argsort(data.on_front, kind="stable"):  # front lines drawn last, on top
        on = data.on_front[j]
        ax.plot(xs, scaled[:, j], color=FRONT if on else DOMINATED, lw=1.8 if on else 1.0)
    for i, a in enumerate(data.axes):
        ax.axvline(i, color="gray", lw=0.8)
        top = a.ticks[int(high[i, 0])] if a.ticks else f"{high[i, 0]:.4g}"
        bottom = a.ticks[int(low[i, 0])] if a.ticks else f"{low[i, 0]:.4g}"
        ax.text(i, 1.03, top, ha="center", fontsize=7)
        ax.text(i, -0.07, bottom, ha="center", fontsize=7)
    ax.set(xticks=xs, xticklabels=[label(a.name) for a in data.axes], yticks=[], ylim=(-0.1, 1.1))
    ax.tick_params(axis="x", labelsize=8)
    fig.savefig(path, format="png")


def slices_png(plots: TunerPlots, path: Path) -> None:
    knobs = list(dict.fromkeys(s.knob for s in plots.slices))
    metrics = list(dict.fromkeys(s.metric for s in plots.slices))
    fig = _figure(2.6 * max(len(knobs), 1) + 1, 2.4 * max(len(metrics), 1) + 0.6)
    if not plots.slices:
        _empty(fig.add_subplot(), "No complete MixTraining trial")
        fig.savefig(path, format="png")
        return
    axes = fig.subplots(len(metrics), len(knobs), squeeze=False, sharey="row")
    fig.suptitle("Each knob against each objective (dark: on the Pareto front)", fontsize=11)
    for s in plots.slices:
        ax = axes[metrics.index(s.metric), knobs.index(s.knob)]
        colours = [FRONT if f else DOMINATED for f in s.on_front]
        # a categorical knob at its position in the space, so every panel reads alike
        x = [s.choices.index(v) for v in s.x] if s.choices else s.x
        ax.scatter(x, s.y, c=colours, s=18, edgecolors="white", linewidths=0.4)
        if s.choices:
            ax.set_xticks(range(len(s.choices)), s.choices)
        ax.set_xlabel(s.knob, fontsize=8)
        ax.tick_params(labelsize=7)
        if knobs.index(s.knob) == 0:
            ax.set_ylabel(label(s.metric), fontsize=8)
    fig.savefig(path, format="png")


def history_png(plots: TunerPlots, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    h = plots.history
    fig = _figure(6.5, 3.8)
    ax = fig.add_subplot()
    ax.set_title("Hypervolume of the MixTraining trials as they finished", fontsize=11)
    if not h.finished:
        _empty(ax, "No complete MixTraining trial")
    else:
        ax.step(h.finished, h.hypervolume, where="post", color=FRONT)
        ax.plot(h.finished, h.hypervolume, "o", color=FRONT, ms=4)
        if h.confirm_from is not None:
            ax.axvline(h.confirm_from - 0.5, color="dimgray", ls="--", lw=1)
            ax.annotate(
                " confirmation trials",
                (h.confirm_from - 0.5, 0.02),
                fontsize=8,
                xycoords=("data", "axes fraction"),
                color="dimgray",
            )
        ax.set(xlabel="complete MixTraining trials finished", ylabel="hypervolume of the runs")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.supxlabel(history_note(h), fontsize=8, color="dimgray")
    fig.savefig(path, format="png")


PNG_WRITERS: dict[str, Callable[[TunerPlots, Path], None]] = {
    "importance.png": importance_png,
    "parallel_coordinates.png": parallel_png,
    "slices.png": slices_png,
    "hypervolume_history.png": history_png,
}
