"""Drawing `PlotData` (see analysis/plots.py): a PNG with matplotlib and an HTML with plotly.

Nothing here decides what to show. matplotlib is used through its object API and the Agg
canvas (no pyplot), so rendering never touches a global backend or opens a window. Every text
is drawn as written: a space name such as `cost $x^$` is not matplotlib mathtext (which would
fail to parse it and lose the whole plot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.plots import BaselineMean, ConfigMean, PlotData, Points

# One colour per group, shared by both renderers so the PNG and the HTML read alike.
COLOURS = {
    "MixTraining, dominated": "#6baed6",
    "MixTraining runs": "#6baed6",
    "MixTraining Pareto front": "#08519c",
    "SSL+SL": "#d95f02",
    "SL": "#1b9e77",
}
OTHER = "#7570b3"
PLAIN = {"parse_math": False}  # matplotlib Text: no mathtext (see the module docstring)
FRONT = COLOURS["MixTraining Pareto front"]


def colour(label: str) -> str:
    for key, value in COLOURS.items():
        if label.startswith(key):
            return value
    return OTHER


def _mpl_points(group: Points) -> dict[str, Any]:
    big = group.label.startswith("MixTraining Pareto")
    seeds = group.label.endswith("seeds")
    return {
        "s": 46 if big else 28,
        "color": colour(group.label),
        "alpha": 0.45 if seeds else 0.95,
        "edgecolors": "white",
        "linewidths": 0.5,
        "label": group.label if group.x else None,
        "zorder": 3,
    }


def _mpl_baseline(b: BaselineMean) -> dict[str, Any]:
    return {"fmt": "D", "ms": 8, "color": colour(b.label), "mec": "black", "capsize": 4}


CONFIRMED = "confirmed configuration: mean ± std over seeds"


def _mpl_config(c: ConfigMean) -> dict[str, Any]:
    # Filled when it carries a confirmed dominance claim, hollow otherwise.
    face = FRONT if c.claims else "white"
    return {"fmt": "s", "ms": 8, "color": FRONT, "mfc": face, "mec": "black", "capsize": 3}


def _plotly_config(c: ConfigMean, data: PlotData, first: bool) -> dict[str, Any]:
    claims = ", ".join(c.claims) or "none"
    tip = (
        f"config {c.config_id} (n={c.n} seeds; confirmed claims: {claims})"
        f"<br>{data.x_label} = %{{x:.4g}} ± {c.x_err:.3g}"
        f"<br>{data.y_label} = %{{y:.4g}} ± {c.y_err:.3g}"
    )
    return {
        "x": [c.x],
        "y": [c.y],
        "mode": "markers",
        "name": CONFIRMED,
        "legendgroup": "confirmed",
        "showlegend": first,
        "customdata": [c.config_id],
        "hovertemplate": tip + "<extra></extra>",
        "marker": {
            "symbol": "square" if c.claims else "square-open",
            "size": 12,
            "color": FRONT,
            "line": {"color": "black", "width": 1},
        },
        "error_x": {"type": "data", "array": [c.x_err], "visible": True},
        "error_y": {"type": "data", "array": [c.y_err], "visible": True},
    }


def draw_png(data: PlotData, path: Path) -> None:
    """Write the trade-off plot as a PNG to `path` (any suffix; the format is PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if data.front_line[0]:
        ax.plot(*data.front_line, color=FRONT, lw=1.5, zorder=2, label="Pareto front boundary")
    for group in data.points:
        ax.scatter(group.x, group.y, **_mpl_points(group))
    for x, y, text in data.front_labels:
        ax.annotate(text, (x, y), xytext=(6, -11), textcoords="offset points", fontsize=7, **PLAIN)
    for b in data.baselines:
        style = _mpl_baseline(b)
        ax.errorbar(b.x, b.y, yerr=b.y_err, xerr=b.x_err, label=b.label, zorder=4, **style)
    for i, c in enumerate(data.configs):
        label = CONFIRMED if i == 0 else None  # one legend entry for all of them
        ax.errorbar(c.x, c.y, yerr=c.y_err, xerr=c.x_err, label=label, zorder=4, **_mpl_config(c))
    if data.knee is not None:
        label = data.knee.label
        star = {"marker": "*", "s": 260, "color": "gold", "edgecolors": "black"}
        ax.scatter(data.knee.x, data.knee.y, label=label, zorder=5, **star)
    ax.margins(0.08)  # room for the knee star and the id labels at the edges
    ax.set_xlabel(data.x_label, **PLAIN)
    ax.set_ylabel(data.y_label, **PLAIN)
    ax.set_title(data.title, fontsize=11, **PLAIN)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        # beside the axes, not on them: inside, "best" still hid a trial in a real search
        legend = ax.legend(
            fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
        )
        for entry in legend.get_texts():
            entry.set_parse_math(False)
    else:  # an empty plot must not look like a rendering bug
        ax.text(0.5, 0.5, "No complete trial to plot", ha="center", transform=ax.transAxes)
        ax.set(xticks=[], yticks=[])  # matplotlib's default -0.04..0.04 ticks would mislead
    fig.supxlabel(data.note, fontsize=8, color="dimgray", **PLAIN)  # below the axis label
    fig.savefig(path, format="png")


def _plotly_points(group: Points) -> dict[str, Any]:
    return {
        "x": group.x,
        "y": group.y,
        "mode": "markers",
        "name": group.label,
        "text": group.hover,
        "customdata": group.ids,
        "hovertemplate": "%{text}<extra></extra>",
        "marker": {"color": colour(group.label), "size": 10 if "front" in group.label else 7},
        "opacity": 0.5 if group.label.endswith("seeds") else 0.95,
    }


def _plotly_baseline(b: BaselineMean, data: PlotData) -> dict[str, Any]:
    tip = f"{b.label}<br>{data.x_label} = %{{x:.4g}}<br>{data.y_label} = %{{y:.4g}}"
    return {
        "x": [b.x],
        "y": [b.y],
        "mode": "markers",
        "name": b.label,
        "hovertemplate": tip + "<extra></extra>",
        "marker": {"symbol": "diamond", "size": 12, "color": colour(b.label)},
        "error_x": {"type": "data", "array": [b.x_err or 0.0], "visible": b.x_err is not None},
        "error_y": {"type": "data", "array": [b.y_err or 0.0], "visible": b.y_err is not None},
    }


def draw_html(data: PlotData, path: Path) -> None:
    """Write the interactive plot to `path`: one HTML file with plotly.js inlined (offline)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if data.front_line[0]:
        x, y = data.front_line
        line = {"color": FRONT, "width": 1.5}
        fig.add_scatter(x=x, y=y, mode="lines", line=line, name="Pareto front boundary")
    for group in data.points:
        fig.add_scatter(**_plotly_points(group))
    for b in data.baselines:
        fig.add_scatter(**_plotly_baseline(b, data))
    for i, c in enumerate(data.configs):
        fig.add_scatter(**_plotly_config(c, data, i == 0))
    if data.knee is not None:
        knee = {**_plotly_points(data.knee), "name": "knee"}
        knee["marker"] = {"symbol": "star", "size": 18, "color": "gold"}
        fig.add_scatter(**knee)
    fig.update_layout(
        title=f"{data.title}<br><sup>{data.note}</sup>",
        xaxis_title=data.x_label,
        yaxis_title=data.y_label,
        template="plotly_white",
    )
    # include_plotlyjs=True inlines plotly.js (~4 MB) so the file opens offline, with no CDN.
    fig.write_html(path, include_plotlyjs=True, full_html=True)
