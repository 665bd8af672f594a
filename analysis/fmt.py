"""Formatting numbers and tables for the report and the terminal (Markdown, units)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def fmt_value(metric: str, value: Any) -> str:
    if value is None or pd.isna(value):
        return "-"
    if metric.endswith("_s"):
        return f"{value:.2f} s"
    if metric.endswith("gflops"):
        return f"{value:.1f} GFLOPs"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fmt_delta(metric: str, delta: float, mean: float) -> str:
    """A margin in the metric's own units, plus relative to the baseline mean for costs."""
    if "accuracy" in metric:
        return f"{delta * 100:+.2f} pts"
    relative = f" ({delta / mean * 100:+.1f}%)" if mean else ""
    sign = "+" if delta >= 0 else "-"
    return f"{sign}{fmt_value(metric, abs(delta))}{relative}"


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown needs an extra package)."""
    out = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def param_text(name: str, spec: dict[str, Any]) -> str:
    if "values" in spec:
        return f"`{name}` one of {', '.join(map(str, spec['values']))}"
    if "value" in spec:
        return f"`{name}` fixed at {spec['value']}"
    return f"`{name}` {spec.get('distribution')} [{spec.get('min')}, {spec.get('max')}]"


def epochs_text(row: pd.Series) -> str:
    planned = row["epochs_planned"]
    return f"{row['epochs_done']}/{'?' if pd.isna(planned) else int(planned)}"
