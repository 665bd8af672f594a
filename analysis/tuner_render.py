"""Drawing `TunerPlots` (see analysis/tuner_plots.py): plotly figures for pareto.html and PNGs.

Nothing here decides what to show. The plotly figures are appended to pareto.html below the
trade-off plot, sharing its one inlined copy of plotly.js (the page still opens offline).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from analysis.plots import AXIS_LABELS
from analysis.render import COLOURS
from analysis.tuner_plots import History, ParallelData, Slice, TunerPlots, history_note

# Grey, not pareto.png's light blue, for dominated trials: dozens of overlapping lines need
# more contrast with the front than two marker sizes do.
FRONT, DOMINATED = COLOURS["MixTraining Pareto front"], "#b8b8b8"
EVALUATOR_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}
EVALUATOR_COLOURS = {"fanova": "#08519c", "ped_anova": "#d95f02"}


def label(name: str) -> str:
    return AXIS_LABELS.get(name, name)


def importance_title(plots: TunerPlots) -> str:
    imp = plots.importance
    head = f"What drives each objective: knob importance over {imp.n_trials} complete trials"
    return f"{head}<br><sup>{imp.note}</sup>" if imp.note else head


# ---------------------------------------------------------------- plotly (pareto.html)


def importance_figure(plots: TunerPlots) -> Any:
    """Horizontal bars per objective: each knob's share, one bar colour per evaluator."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    imp = plots.importance
    objectives = imp.objectives or ["(none)"]
    fig = make_subplots(rows=1, cols=len(objectives), subplot_titles=[label(m) for m in objectives])
    for col, metric in enumerate(imp.objectives, start=1):
        for evaluator, per_objective in imp.values.items():
            shares = per_objective[metric]
            name = EVALUATOR_NAMES.get(evaluator, evaluator)
            fig.add_trace(
                go.Bar(
                    x=[shares[p] for p in imp.params],
                    y=imp.params,
                    orientation="h",
                    name=name,
                    legendgroup=evaluator,
                    showlegend=col == 1,
                    marker_color=EVALUATOR_COLOURS.get(evaluator),
                    hovertemplate=f"{name}: %{{y}} %{{x:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        title=importance_title(plots), template="plotly_white", barmode="group", height=480
    )
    fig.update_xaxes(range=[0, 1], title_text="share of importance")
    fig.update_yaxes(autorange="reversed")  # knobs top-down in the space's order
    return fig


def _dimension(axis: Any) -> dict[str, Any]:
    dim: dict[str, Any] = {"label": label(axis.name), "values": axis.values}
    if axis.ticks is not None:
        dim.update(tickvals=list(range(len(axis.ticks))), ticktext=axis.ticks)
    return dim


def parallel_figure(data: ParallelData) -> Any:
    """One parcoords trace; line colour 1 = on the Pareto front, 0 = dominated."""
    import plotly.graph_objects as go

    colour = [1 if f else 0 for f in data.on_front]
    line = {"color": colour, "colorscale": [[0, DOMINATED], [1, FRONT]], "cmin": 0, "cmax": 1}
    fig = go.Figure(go.Parcoords(dimensions=[_dimension(a) for a in data.axes], line=line))
    title = "Knobs and objectives of the complete MixTraining trials (dark: on the Pareto front)"
    fig.update_layout(title=title, template="plotly_white", height=520)
    return fig


def _slice_traces(s: Slice, first: bool) -> list[dict[str, Any]]:
    traces = []
    for on, name, colour in ((False, "dominated", DOMINATED), (True, "on the front", FRONT)):
        pick = [i for i, f in enumerate(s.on_front) if f == on]
        traces.append(
            {
                "type": "scatter",
                "x": [s.x[i] for i in pick],
                "y": [s.y[i] for i in pick],
                "customdata": [s.ids[i] for i in pick],
                "mode": "markers",
                "name": name,
                "legendgroup": name,
                "showlegend": first,
                "marker": {"color": colour, "size": 9 if on else 7},
                "hovertemplate": f"trial %{{customdata}}<br>{s.knob} = %{{x}}<br>"
                f"{label(s.metric)} = %{{y:.4g}}<extra></extra>",
            }
        )
    return traces


def slices_figure(slices: list[Slice]) -> Any:
    """A grid: one row per objective, one column per knob."""
    from plotly.subplots import make_subplots

    knobs = list(dict.fromkeys(s.knob for s in slices)) or ["(none)"]
    metrics = list(dict.fromkeys(s.metric for s in slices)) or ["(none)"]
    fig = make_subplots(rows=len(metrics), cols=len(knobs), shared_yaxes=True)
    for s in slices:
        row, col = metrics.index(s.metric) + 1, knobs.index(s.knob) + 1
        for trace in _slice_traces(s, first=(row, col) == (1, 1)):
            fig.add_trace(trace, row=row, col=col)
        order = {"categoryorder": "array", "categoryarray": s.choices} if s.choices else {}
        fig.update_xaxes(title_text=s.knob, row=row, col=col, **order)
        if col == 1:
            fig.update_yaxes(title_text=label(s.metric), row=row, col=col)
    height = 160 + 300 * len(metrics)
    fig.update_layout(
        title="Each knob against each objective", template="plotly_white", height=height
    )
    return fig


def history_figure(history: History) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=history.finished,
            y=history.hypervolume,
            customdata=history.ids,
            mode="lines+markers",
            name="hypervolume",
            line={"color": FRONT, "shape": "hv"},
            hovertemplate="after trial %{customdata} (%{x} finished)<br>"
            "hypervolume %{y:.4g}<extra></extra>",
        )
    )
    if history.confirm_from is not None:
        fig.add_vline(x=history.confirm_from - 0.5, line_dash="dash", line_color="gray")
    fig.update_layout(
        title="Hypervolume of the MixTraining trials as they finished"
        f"<br><sup>{history_note(history)}</sup>",
        xaxis_title="complete MixTraining trials finished",
        xaxis_dtick=max(1, math.ceil(len(history.finished) / 12)),  # whole trials only
        yaxis_title="hypervolume (reference point as in summary.json)",
        template="plotly_white",
        height=460,
    )
    return fig


def figures(plots: TunerPlots) -> dict[str, Any]:
    """The plotly figures pareto.html shows below the trade-off plot, by short name."""
    return {
        "importance": importance_figure(plots),
        "parallel": parallel_figure(plots.parallel),
        "slices": slices_figure(plots.slices),
        "history": history_figure(plots.history),
    }


def append_to_html(path: Path, plots: TunerPlots) -> None:
    """Append the tuner figures to an HTML page written by plotly with plotly.js inlined."""
    html = path.read_text(encoding="utf-8")
    at = html.rfind("</body>")
    if at < 0:
        raise ValueError(f"{path}: no </body>; not a page written by plotly's write_html")
    divs = [
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"tuner-{name}")
        for name, fig in figures(plots).items()
    ]
    path.write_text(html[:at] + "\n".join(divs) + html[at:], encoding="utf-8")
