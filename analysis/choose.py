"""Choosing trials to export: from the MixTraining front, after the user's filters.

Baselines are never exported: their configs are the space's fixed settings with a pipeline
and seed, which a user writes by hand. Filters act on `val_accuracy` and `train_latency_s`
(the pinned metrics, whatever the space's objectives). The filtered front still holds the
best trial under the filters: anything dominating a feasible trial is feasible too.
"""

from __future__ import annotations

import pandas as pd

from analysis.hypervolume import knee_index
from analysis.load import FROM_RAY
from analysis.pareto import to_minimize
from analysis.summary import Analysis, left_out_counts

SELECTIONS = ("knee", "max-accuracy", "min-latency", "all-pareto")


class NoMatch(ValueError):
    """Nothing to export; the message says what the best available was."""


def apply_filters(
    front: pd.DataFrame, max_latency: float | None, min_accuracy: float | None
) -> pd.DataFrame:
    keep = pd.Series(True, index=front.index)
    if max_latency is not None:
        keep &= front["train_latency_s"] <= max_latency
    if min_accuracy is not None:
        keep &= front["val_accuracy"] >= min_accuracy
    return front[keep]


def best_available(analysis: Analysis) -> str:
    """The fastest and the most accurate complete MixTraining trial, for error messages."""
    mix = analysis.mix
    if mix.empty:
        counts = ", ".join(f"{n} {r}" for r, n in sorted(left_out_counts(analysis).items()))
        return f"no complete MixTraining trial ({counts or 'no trials'})"
    fast = mix.loc[mix["train_latency_s"].idxmin()]
    good = mix.loc[mix["val_accuracy"].idxmax()]
    return (
        f"fastest: {fast['trial_id']} ({fast['train_latency_s']:.2f} s, val_accuracy "
        f"{fast['val_accuracy']:.4f}); most accurate: {good['trial_id']} "
        f"({good['train_latency_s']:.2f} s, val_accuracy {good['val_accuracy']:.4f})"
    )


def select_trials(
    analysis: Analysis,
    how: str,
    max_latency: float | None = None,
    min_accuracy: float | None = None,
) -> pd.DataFrame:
    """Front trials chosen by `how` (one of SELECTIONS) among those passing the filters.

    The knee is recomputed on the filtered front, so it is the knee of what the user allows.

    Raises:
        ValueError: `how` is not one of SELECTIONS.
        NoMatch: no complete trial, or none passes the filters.
    """
    if how not in SELECTIONS:
        raise ValueError(f"--select {how!r}: expected one of {', '.join(SELECTIONS)}")
    front = apply_filters(analysis.front, max_latency, min_accuracy)
    if front.empty:
        wanted = filter_text(max_latency, min_accuracy)
        raise NoMatch(f"no front trial{wanted}; best available: {best_available(analysis)}")
    if how == "all-pareto":
        return front
    if how == "max-accuracy":
        return front.loc[[front["val_accuracy"].idxmax()]]
    if how == "min-latency":
        return front.loc[[front["train_latency_s"].idxmin()]]
    exp = analysis.experiment
    costs = to_minimize(front[exp.metrics].to_numpy(dtype=float), exp.goals)
    done = to_minimize(analysis.done[exp.metrics].to_numpy(dtype=float), exp.goals)
    return front.iloc[[knee_index(costs, (done.min(axis=0), done.max(axis=0)))]]


def filter_text(max_latency: float | None, min_accuracy: float | None) -> str:
    parts = []
    if max_latency is not None:
        parts.append(f"train_latency_s <= {max_latency:g}")
    if min_accuracy is not None:
        parts.append(f"val_accuracy >= {min_accuracy:g}")
    return " with " + " and ".join(parts) if parts else ""


def provenance(analysis: Analysis, row: pd.Series) -> list[str]:
    """Comment lines for an exported config: where it came from and what it scored."""
    exp = analysis.experiment
    metrics = [m for m in ("val_accuracy", "test_accuracy", "train_latency_s") if m in row]
    scores = ", ".join(f"{m} {float(row[m]):.6g}" for m in metrics if pd.notna(row[m]))
    lines = [
        f"Exported by `tune-app export` from experiment {exp.path.resolve()}",
        f"trial {row['trial_id']} ({row['pipeline']}, seed {row['seed']}); {scores}",
        f"on the MixTraining Pareto front of {len(analysis.front)} trial(s) ({exp.source})",
        "num_threads is left out: the search slot's thread count; 0 = use all CPUs.",
    ]
    if exp.source == FROM_RAY:  # Ray's files hold only the suggestion, not the fixed settings
        lines.append("settings rebuilt from space.yaml + the suggestion; others are defaults")
    return lines
