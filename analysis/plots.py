"""The trade-off plot's data: pure functions, tested; `analysis.render` only draws it.

`plot_data` decides what is drawn, so the PNG and the HTML show the same points, front line
and baseline error bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.configs import BY_RUN
from analysis.summary import MIX, PIPELINE_NAMES, Analysis, baseline_stats, left_out_counts

AXIS_LABELS = {
    "val_accuracy": "validation accuracy",
    "test_accuracy": "test accuracy",
    "train_latency_s": "training latency (s)",
    "calibrated_latency_s": "calibrated training latency (s)",
    "train_gflops": "training compute (GFLOPs)",
}
# Only used to fill the second axis of a one-objective search.
DEFAULT_GOALS = {"val_accuracy": "maximize", "train_latency_s": "minimize"}


@dataclass(frozen=True)
class Points:
    """A scatter group; `hover` is one line-broken text per point (plotly's tooltip)."""

    label: str
    x: list[float]
    y: list[float]
    ids: list[str]
    hover: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BaselineMean:
    label: str
    x: float
    y: float
    x_err: float | None  # sample std over seeds; None with a single seed
    y_err: float | None


@dataclass(frozen=True)
class ConfigMean:
    """A confirmed configuration (2+ seeds): its mean, the seeds' sample std, its seeds."""

    config_id: str
    x: float
    y: float
    x_err: float
    y_err: float
    n: int
    claims: tuple[str, ...]  # baselines it is confirmed to dominate (analysis.verdict)


@dataclass(frozen=True)
class PlotData:
    x_metric: str
    y_metric: str
    x_label: str
    y_label: str
    title: str
    note: str
    points: list[Points]
    front_line: tuple[list[float], list[float]]  # step-line vertices; empty if not drawn
    front_labels: list[tuple[float, float, str]]  # trial ids beside front points (PNG)
    baselines: list[BaselineMean]
    knee: Points | None
    configs: list[ConfigMean] = field(default_factory=list)  # confirmed MixTraining configs


def plot_axes(metrics: list[str], goals: list[str]) -> tuple[tuple[str, str], tuple[str, str]]:
    """((x_metric, x_goal), (y_metric, y_goal)): the first two objectives, a maximised one on y."""
    pairs = list(zip(metrics, goals, strict=True))
    if len(pairs) == 1:
        other = "train_latency_s" if metrics[0] != "train_latency_s" else "val_accuracy"
        pairs.append((other, DEFAULT_GOALS[other]))
    first, second = pairs[0], pairs[1]
    if first[1] == "maximize" or second[1] != "maximize":
        return second, first
    return first, second


def front_steps(x: list[float], y: list[float], x_goal: str) -> tuple[list[float], list[float]]:
    """Vertices of the front's attainment staircase: sorted best-x first, horizontal then vertical.

    Between two front points the best value reachable on y is that of the point with the
    better x, so the line holds y until the next point's x, then jumps.
    """
    sign = 1 if x_goal == "minimize" else -1
    order = np.argsort(np.asarray(x, dtype=float) * sign, kind="stable")
    xs: list[float] = []
    ys: list[float] = []
    for i in order:
        if xs and (x[i], y[i]) == (xs[-1], ys[-1]):
            continue  # duplicate front points would add zero-length segments
        if xs:
            xs.append(float(x[i]))
            ys.append(ys[-1])
        xs.append(float(x[i]))
        ys.append(float(y[i]))
    return xs, ys


def point_labels(points: Points) -> list[tuple[float, float, str]]:
    """One label per distinct position; duplicates share it ("m2, m5") instead of overprinting."""
    ids: dict[tuple[float, float], list[str]] = {}
    for x, y, tid in zip(points.x, points.y, points.ids, strict=True):
        ids.setdefault((x, y), []).append(tid)
    return [(x, y, ", ".join(tids)) for (x, y), tids in ids.items()]


def hover_text(row: pd.Series, knobs: list[str], metrics: list[str]) -> str:
    name = PIPELINE_NAMES.get(row["pipeline"], row["pipeline"])
    head = f"trial {row['trial_id']} ({name}, seed {row['seed']})"
    lines = [f"{k} = {_short(row[k])}" for k in knobs if row["pipeline"] == MIX]
    lines += [f"{AXIS_LABELS.get(m, m)} = {_short(row[m])}" for m in metrics]
    return "<br>".join([head, *lines])


def _short(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def _points(label: str, rows: pd.DataFrame, x: str, y: str, knobs: list[str]) -> Points:
    shown = list(dict.fromkeys([y, x]))
    return Points(
        label,
        rows[x].astype(float).tolist(),
        rows[y].astype(float).tolist(),
        rows["trial_id"].astype(str).tolist(),
        [hover_text(r, knobs, shown) for _, r in rows.iterrows()],
    )


def _baselines(analysis: Analysis, x: str, y: str) -> tuple[list[Points], list[BaselineMean]]:
    """Each baseline's seeds as faint points, and its mean with the seeds' std as error bars."""
    seeds_points, means = [], []
    for pipeline, stats in baseline_stats(analysis.done, [x, y]).items():
        name = PIPELINE_NAMES.get(pipeline, pipeline)
        seeds = analysis.done[analysis.done["pipeline"] == pipeline]
        seeds_points.append(_points(f"{name} seeds", seeds, x, y, analysis.experiment.knobs))
        n = stats[y]["n"]
        label = f"{name} mean ± std (n={n})" if n > 1 else f"{name} (one seed)"
        sx, sy = stats[x], stats[y]
        means.append(BaselineMean(label, sx["mean"], sy["mean"], sx["std"], sy["std"]))
    return seeds_points, means


def plot_data(analysis: Analysis) -> PlotData:
    """What the trade-off plot shows: complete trials, the front, baseline means, the knee.

    Over configurations (confirmed ones exist) the front line joins configuration means and
    every MixTraining run is a plain point; over single runs it joins the front trials.
    """
    exp, mix = analysis.experiment, analysis.mix
    (x, x_goal), (y, _) = plot_axes(exp.metrics, exp.goals)
    seeds, means = _baselines(analysis, x, y)
    if analysis.basis == BY_RUN:
        front = _points("MixTraining Pareto front", analysis.front, x, y, exp.knobs)
        runs = [_points("MixTraining, dominated", mix[~mix["on_front"]], x, y, exp.knobs), front]
        knee_rows = mix[mix["knee"]]
        knee = _points("knee (trial {})", knee_rows, x, y, exp.knobs) if len(knee_rows) else None
    else:
        front = config_points("MixTraining Pareto front", analysis.front_configs, x, y)
        runs = [_points("MixTraining runs (one seed each)", mix, x, y, exp.knobs)]
        knee_config = analysis.knee_config
        knee = None
        if knee_config is not None:
            knee = config_points("knee (configuration {})", knee_config.to_frame().T, x, y)
    if knee is not None:
        knee = replace(knee, label=knee.label.format(knee.ids[0]))
    # The staircase is the front only when the plot's two axes are the search's objectives,
    # and a boundary needs two points (one point is already drawn, and starred as the knee).
    two_d = len(exp.metrics) == 2 and len(front.x) > 1
    return PlotData(
        x_metric=x,
        y_metric=y,
        x_label=AXIS_LABELS.get(x, x),
        y_label=AXIS_LABELS.get(y, y),
        title=plot_title(analysis),
        note=plot_note(analysis),
        points=runs + seeds,
        front_line=front_steps(front.x, front.y, x_goal) if two_d else ([], []),
        front_labels=point_labels(front),
        baselines=means,
        knee=knee,
        configs=confirmed_configs(analysis, x, y),
    )


def config_points(label: str, configs: pd.DataFrame, x: str, y: str) -> Points:
    """Configurations at their means over seeds (the hover says how many seeds)."""
    hover = [
        f"configuration {c['config_id']} (n={int(c['n'])} seed(s))"
        f"<br>{AXIS_LABELS.get(y, y)} = {_short(c[f'{y}_mean'])}"
        f"<br>{AXIS_LABELS.get(x, x)} = {_short(c[f'{x}_mean'])}"
        for _, c in configs.iterrows()
    ]
    return Points(
        label,
        configs[f"{x}_mean"].astype(float).tolist(),
        configs[f"{y}_mean"].astype(float).tolist(),
        configs["config_id"].astype(str).tolist(),
        hover,
    )


def confirmed_configs(analysis: Analysis, x: str, y: str) -> list[ConfigMean]:
    """The confirmed MixTraining configurations, drawn as means with std error bars."""
    verdict = analysis.verdict
    if verdict is None or x not in analysis.experiment.metrics:
        return []
    if y not in analysis.experiment.metrics:
        return []
    configs = verdict.configs
    rows = configs[(configs["pipeline"] == MIX) & configs["confirmed"]]
    won = verdict.confirmed_dominance
    return [
        ConfigMean(
            str(c["config_id"]),
            float(c[f"{x}_mean"]),
            float(c[f"{y}_mean"]),
            float(c[f"{x}_std"]),
            float(c[f"{y}_std"]),
            int(c["n"]),
            tuple(b for b, ids in won.items() if c["config_id"] in ids),
        )
        for _, c in rows.iterrows()
    ]


def plot_title(analysis: Analysis) -> str:
    name = analysis.experiment.space.get("name", analysis.experiment.path.name)
    front = len(analysis.front_configs)
    what = "single run(s)" if analysis.basis == BY_RUN else "configuration(s), means over seeds"
    return f"{name}: {len(analysis.mix)} complete MixTraining trials; front: {front} {what}"


def plot_note(analysis: Analysis) -> str:
    counts = left_out_counts(analysis)
    left = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    base = (
        "Complete trials only; circles: single runs; squares: confirmed configurations (2+ "
        "seeds) at their mean; error bars: sample std over seeds"
    )
    return f"{base}; left out: {left}." if left else f"{base}; none left out."
