"""Writing an analysis folder: every file goes to a temporary name first, then is renamed.

A crash or Ctrl-C while plotting leaves the previous files (or none), never half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd

from analysis.importance import importance_markdown
from analysis.load import FINAL_METRICS, load_experiment
from analysis.plots import plot_data
from analysis.records import plain, summary_json
from analysis.render import draw_html, draw_png
from analysis.report import report_markdown
from analysis.summary import Analysis, analyze_experiment
from analysis.tuner_plots import TunerPlots, tuner_json, tuner_plots
from analysis.tuner_png import PNG_WRITERS
from analysis.tuner_render import append_to_html

FILES = ("pareto.parquet", "summary.json", "pareto.png", "pareto.html", "report.md", *PNG_WRITERS)
# What each file holds, for `tune-app analyze` to say where everything is.
DESCRIPTIONS = {
    "report.md": "the report: front, baselines, noise, hypervolume, knob importance",
    "summary.json": "every number of the report, importance included",
    "pareto.parquet": "the front's trials (every seed of its configurations), by trial_id",
    "pareto.png": "the trade-off plot",
    "pareto.html": "interactive trade-off plot, importance, parallel coordinates, slices, "
    "hypervolume history (opens offline)",
    "importance.png": "knob importance per objective (fANOVA, PED-ANOVA)",
    "parallel_coordinates.png": "knobs and objectives, coloured by front membership",
    "slices.png": "each knob against each objective",
    "hypervolume_history.png": "hypervolume of the front as trials finished",
}


def written_lines(folder: Path) -> list[str]:
    """What `tune-app analyze` prints after writing: each file's path and what it holds."""
    width = max(len(str(folder / name)) for name in FILES)
    lines = [f"Wrote {len(FILES)} files:"]
    lines += [f"  {str(folder / name):<{width}}  {DESCRIPTIONS[name]}" for name in FILES]
    return lines


def front_frame(analysis: Analysis) -> pd.DataFrame:
    """pareto.parquet: every trial of the front's configurations, keyed by trial_id, with its
    `config_id`, `knee` (its configuration is the knee) and per-trial dominance columns."""
    exp, front = analysis.experiment, analysis.front
    derived = [c for c in front if c.startswith("dominates_") or "_vs_" in c]
    metrics = [m for m in FINAL_METRICS if m in front]
    columns = ["trial_id", "config_id", "pipeline", "seed", *exp.knobs, *metrics, "knee"]
    columns += derived
    return front[columns].reset_index(drop=True)


def _writers(analysis: Analysis) -> dict[str, Callable[[Path], object]]:
    data, tuner = plot_data(analysis), tuner_plots(analysis)
    summary = json.dumps(plain({**summary_json(analysis), **tuner_json(tuner)}), indent=2) + "\n"
    report = report_markdown(analysis, importance_markdown(tuner.importance))

    def html(path: Path) -> None:
        draw_html(data, path)
        append_to_html(path, tuner)

    writers: dict[str, Callable[[Path], object]] = {
        "pareto.parquet": lambda p: front_frame(analysis).to_parquet(p, index=False),
        "summary.json": lambda p: p.write_text(summary, encoding="utf-8"),
        "pareto.png": lambda p: draw_png(data, p),
        "pareto.html": html,
        "report.md": lambda p: p.write_text(report, encoding="utf-8"),
    }
    for name, draw in PNG_WRITERS.items():
        writers[name] = partial(_draw_tuner, draw, tuner)
    return writers


def _draw_tuner(draw: Callable[[TunerPlots, Path], None], tuner: TunerPlots, path: Path) -> None:
    draw(tuner, path)


def write_analysis(experiment: str | Path, out: str | Path | None = None) -> tuple[Analysis, Path]:
    """Analyse an experiment folder and write its files (`FILES`).

    Args:
        experiment: the experiment folder.
        out: where to write (default `<experiment>/analysis`).

    Returns:
        The analysis and the folder written to.

    Raises:
        ExperimentError: the folder is not a readable experiment (nothing is written).
    """
    analysis = analyze_experiment(load_experiment(experiment))
    folder = Path(out) if out is not None else Path(experiment) / "analysis"
    folder.mkdir(parents=True, exist_ok=True)
    temps: dict[str, Path] = {}
    try:
        for name, write in _writers(analysis).items():
            temps[name] = folder / f".{name}.tmp"
            write(temps[name])
        for name, tmp in temps.items():  # all rendered: now swap them in
            os.replace(tmp, folder / name)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    return analysis, folder
