"""The data of the plots a tuner expects: pure functions; `analysis.tuner_render` draws them.

- parallel coordinates: one line per complete MixTraining trial over the searched knobs, ending
  in the objectives, coloured by front membership;
- slices: each knob against each objective;
- hypervolume history: the front's hypervolume after each finished trial, in finish order;
- importance (computed in `analysis.importance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.hypervolume import hypervolume
from analysis.importance import (
    Importance,
    distributions,
    importance_json,
    param_importance,
    searched,
)
from analysis.load import read_results
from analysis.pareto import to_minimize
from analysis.summary import Analysis

FINISH_ORDER = "the order they finished (each trial's last result.json timestamp)"
TABLE_ORDER = "trials.parquet row order (some trial has no result.json timestamp)"
CONFIRM_ROLE = "confirm"


@dataclass(frozen=True)
class Axis:
    """One parallel-coordinates axis; a categorical knob gets positions 0..k-1 and `ticks`."""

    name: str
    values: list[float]
    ticks: list[str] | None = None


@dataclass(frozen=True)
class ParallelData:
    axes: list[Axis]
    on_front: list[bool]
    ids: list[str]


@dataclass(frozen=True)
class Slice:
    """One knob against one objective; `x` holds strings for a categorical knob."""

    knob: str
    metric: str
    x: list[float | str]
    y: list[float]
    on_front: list[bool]
    ids: list[str]
    choices: list[Any] | None = None  # a categorical knob's values in the space's order


@dataclass(frozen=True)
class History:
    """Hypervolume of the complete MixTraining trials finished so far, after each one.

    Every value uses one reference point (summary.json's), so the curve never decreases.
    `confirm_from` is the 1-based count at which the first confirmation trial (a configuration
    re-run with another seed) finished, or None when none is in the history.
    """

    finished: list[int]
    hypervolume: list[float]
    ids: list[str]
    order: str
    confirm_from: int | None = None


@dataclass(frozen=True)
class TunerPlots:
    knobs: list[str]
    importance: Importance
    parallel: ParallelData
    slices: list[Slice]
    history: History


def _knob_axis(name: str, column: pd.Series, choices: list | None) -> Axis:
    if choices is None:
        return Axis(name, column.astype(float).tolist())
    labels = [str(c) for c in choices]
    return Axis(name, [float(labels.index(str(v))) for v in column], labels)


def parallel_data(analysis: Analysis, knobs: list[str], choices: dict[str, list]) -> ParallelData:
    """Axes: the searched knobs, then the objectives; one line per complete MixTraining trial."""
    mix, exp = analysis.mix, analysis.experiment
    axes = [_knob_axis(k, mix[k], choices.get(k)) for k in knobs]
    axes += [Axis(m, mix[m].astype(float).tolist()) for m in exp.metrics]
    return ParallelData(axes, mix["on_front"].astype(bool).tolist(), mix["trial_id"].tolist())


def slice_data(analysis: Analysis, knobs: list[str], choices: dict[str, list]) -> list[Slice]:
    """Every (knob, objective) pair, knobs in space order, objectives in the space's order."""
    mix, exp = analysis.mix, analysis.experiment
    front, ids = mix["on_front"].astype(bool).tolist(), mix["trial_id"].tolist()
    out = []
    for metric in exp.metrics:
        y = mix[metric].astype(float).tolist()
        for k in knobs:
            labels = [str(c) for c in choices[k]] if k in choices else None
            x = mix[k].astype(str) if labels else mix[k].astype(float)
            out.append(Slice(k, metric, x.tolist(), y, front, ids, labels))
    return out


def trial_results(path: Path, trial_id: str) -> list[dict[str, Any]]:
    """A trial's result.json lines: `<exp>/<id>/` for the search phase, `<exp>/confirm*/<id>/`
    for the confirmation phases (analysis.load.read_results skips a torn last line)."""
    for folder in [path / trial_id, *sorted(path.glob(f"confirm*/{trial_id}"))]:
        results = read_results(folder / "result.json")
        if results:
            return results
    return []


def finish_times(path: Path, trial_ids: list[str]) -> list[float] | None:
    """Each trial's last reported timestamp, or None if some trial has none."""
    times = []
    for tid in trial_ids:
        results = trial_results(path, str(tid))
        stamp = results[-1].get("timestamp") if results else None
        if stamp is None:
            return None
        times.append(float(stamp))
    return times


def history_note(h: History) -> str:
    """What the history counts and in which order (shared by the PNG and the HTML)."""
    order = "finishing order" if h.order == FINISH_ORDER else "table order (no timestamps)"
    confirm = (
        f"confirmation trials from no. {h.confirm_from} (dashed line)"
        if h.confirm_from is not None
        else "no confirmation trials"
    )
    return f"single runs in {order}; {confirm}; one reference point throughout"


def history_data(analysis: Analysis) -> History:
    """Hypervolume (summary.json's reference point) after each complete MixTraining trial.

    Trials, the confirmation trials included, are taken in the order they finished when every
    one has a result.json timestamp, else in the table's order; the last value equals the
    MixTraining hypervolume in summary.json.
    """
    mix, exp = analysis.mix, analysis.experiment
    if mix.empty or analysis.reference is None:
        return History([], [], [], TABLE_ORDER)
    ids = mix["trial_id"].astype(str).tolist()
    times = finish_times(exp.path, ids)
    order = np.argsort(times, kind="stable") if times else np.arange(len(mix))
    costs = to_minimize(mix[exp.metrics].to_numpy(dtype=float), exp.goals)[order]
    ref = to_minimize(np.asarray(analysis.reference, dtype=float), exp.goals)[0]
    volumes = [hypervolume(costs[: k + 1], ref) for k in range(len(costs))]
    roles = mix["role"].astype(str).to_numpy()[order] if "role" in mix else np.array([])
    confirm = np.flatnonzero(roles == CONFIRM_ROLE)
    return History(
        list(range(1, len(costs) + 1)),
        volumes,
        [ids[i] for i in order],
        FINISH_ORDER if times else TABLE_ORDER,
        int(confirm[0]) + 1 if len(confirm) else None,
    )


def tuner_plots(analysis: Analysis) -> TunerPlots:
    """Importance and the data of every tuner plot for one analysed experiment."""
    exp = analysis.experiment
    parameters = exp.space.get("parameters") or {}
    dists = searched(distributions(parameters))
    knobs = [k for k in dists if k in analysis.mix]
    choices = {k: list(d.choices) for k, d in dists.items() if hasattr(d, "choices")}
    trainer = exp.space.get("trainer") or {}
    importance = param_importance(analysis.mix, parameters, exp.metrics, exp.goals, trainer)
    return TunerPlots(
        knobs,
        importance,
        parallel_data(analysis, knobs, choices),
        slice_data(analysis, knobs, choices),
        history_data(analysis),
    )


def tuner_json(plots: TunerPlots) -> dict[str, Any]:
    """What summary.json gains: importance (see analysis.importance) and the hypervolume
    history, `[{"trials": n, "hypervolume": v}]` in finishing order, with its trial ids."""
    h = plots.history
    history = [
        {"trials": n, "hypervolume": v} for n, v in zip(h.finished, h.hypervolume, strict=True)
    ]
    about = {"order": h.order, "trial_ids": h.ids, "confirmation_from": h.confirm_from}
    return {
        **importance_json(plots.importance),
        "hypervolume_history": history,
        "hypervolume_history_order": about,
    }
