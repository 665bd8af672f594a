"""Writing an analysis folder: every file goes to a temporary name first, then is renamed.

A crash or Ctrl-C while plotting leaves the previous files (or none), never half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from analysis.load import FINAL_METRICS, load_experiment
from analysis.plots import plot_data
from analysis.records import summary_json
from analysis.render import draw_html, draw_png
from analysis.report import report_markdown
from analysis.summary import Analysis, analyze_experiment

FILES = ("pareto.parquet", "summary.json", "pareto.png", "pareto.html", "report.md")


def front_frame(analysis: Analysis) -> pd.DataFrame:
    """pareto.parquet: the MixTraining front keyed by trial_id, with knee and dominance."""
    exp, front = analysis.experiment, analysis.front
    derived = [c for c in front if c.startswith("dominates_") or "_vs_" in c]
    metrics = [m for m in FINAL_METRICS if m in front]
    columns = ["trial_id", "pipeline", "seed", *exp.knobs, *metrics, "knee", *derived]
    return front[columns].reset_index(drop=True)


def _writers(analysis: Analysis) -> dict[str, Callable[[Path], None]]:
    data = plot_data(analysis)
    summary = json.dumps(summary_json(analysis), indent=2) + "\n"
    report = report_markdown(analysis)
    return {
        "pareto.parquet": lambda p: front_frame(analysis).to_parquet(p, index=False),
        "summary.json": lambda p: p.write_text(summary, encoding="utf-8"),
        "pareto.png": lambda p: draw_png(data, p),
        "pareto.html": lambda p: draw_html(data, p),
        "report.md": lambda p: p.write_text(report, encoding="utf-8"),
    }


def write_analysis(experiment: str | Path, out: str | Path | None = None) -> tuple[Analysis, Path]:
    """Analyse an experiment folder and write its five files.

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
