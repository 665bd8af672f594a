"""summary.json: an Analysis as plain, JSON-ready records (numbers, strings, lists, None)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis.hypervolume import KNEE_RULE, REFERENCE_RULE
from analysis.summary import Analysis, beats, better_everywhere, left_out_counts, within_noise
from analysis.verdict import BASELINES
from analysis.verdict_report import verdict_json


def plain(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars and arrays to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def last_line(error: Any) -> str | None:
    """The last non-empty line of a traceback (the exception), or None."""
    if error is None or (isinstance(error, float) and np.isnan(error)):
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else None


def trial_record(row: pd.Series, columns: list[str]) -> dict[str, Any]:
    return {c: plain(row[c]) for c in columns if c in row}


def dominance_json(analysis: Analysis) -> dict[str, Any]:
    """Per baseline: its mean point and which MixTraining trials dominate it."""
    out = {}
    for pipeline, stats in analysis.baselines.items():
        winners = beats(analysis, pipeline)
        out[pipeline] = {
            "mean_point": {m: stats[m]["mean"] for m in analysis.experiment.metrics},
            "seeds": stats[analysis.experiment.metrics[0]]["n"],
            "dominated_by": winners["trial_id"].tolist(),
            "dominated_by_front": winners[winners["on_front"]]["trial_id"].tolist(),
            "better_on_every_objective": [
                r["trial_id"]
                for _, r in winners.iterrows()
                if better_everywhere(analysis, r, pipeline)
            ],
            "margins_beyond_seed_std": [
                r["trial_id"]
                for _, r in winners.iterrows()
                if not within_noise(analysis, r, pipeline)
            ],
            "mixtraining_trials": len(analysis.mix),
        }
    return out


def counts_json(analysis: Analysis) -> dict[str, Any]:
    return {
        "trials": len(analysis.experiment.table),
        "complete": len(analysis.done),
        "complete_by_pipeline": analysis.done["pipeline"].value_counts().to_dict(),
        "left_out": left_out_counts(analysis),
        "mixtraining_without_mix_epoch": int(analysis.mix["no_mix_epoch"].sum()),
    }


def hypervolume_json(analysis: Analysis) -> dict[str, Any]:
    ref, metrics = analysis.reference, analysis.experiment.metrics
    return {
        "reference_point": None if ref is None else dict(zip(metrics, ref, strict=True)),
        "reference_rule": REFERENCE_RULE,
        **analysis.hypervolume,
    }


def config_record(analysis: Analysis, config: pd.Series) -> dict[str, Any]:
    """One chosen configuration: id, seeds and trials, knobs, and per objective (and test
    accuracy) its mean and sample std over seeds; `<metric>` repeats the mean."""
    exp = analysis.experiment
    record = {
        "config_id": config["config_id"],
        "pipeline": config["pipeline"],
        "n": int(config["n"]),
        "seeds": list(config["seeds"]),
        "trial_ids": list(config["trial_ids"]),
        **{k: config.get(k) for k in exp.knobs},
    }
    for m in dict.fromkeys([*exp.metrics, "test_accuracy"]):
        if f"{m}_mean" in config:
            record.update({m: config[f"{m}_mean"], f"{m}_mean": config[f"{m}_mean"]})
            record[f"{m}_std"] = config[f"{m}_std"]
    return plain(record)


def summary_json(analysis: Analysis) -> dict[str, Any]:
    """summary.json: counts, left out, baselines, dominance, hypervolume, knee and front.

    `knee` and `front` are configurations (`config_record`), chosen as `choice_basis` says:
    among confirmed configurations by their means when any exist, else among single runs.
    """
    exp, knee = analysis.experiment, analysis.knee_config
    left_columns = ["trial_id", "pipeline", "status", "reason", "epochs_done", "epochs_planned"]
    summary = {
        "experiment": str(exp.path),
        "space": exp.space.get("name"),
        "source": exp.source,
        "objectives": exp.space["objectives"],
        "counts": counts_json(analysis),
        "left_out": [
            {**trial_record(r, left_columns), "error": last_line(r["error"])}
            for _, r in analysis.left_out.iterrows()
        ],
        "baselines": analysis.baselines,
        "dominance": dominance_json(analysis),
        "hypervolume": hypervolume_json(analysis),
        "choice_basis": analysis.basis,
        "knee": None if knee is None else {**config_record(analysis, knee), "rule": KNEE_RULE},
        "front": [config_record(analysis, c) for _, c in analysis.front_configs.iterrows()],
        "confirmed_dominance": (
            analysis.verdict.confirmed_dominance
            if analysis.verdict is not None
            else {b: [] for b in BASELINES}
        ),
        "verdict": None if analysis.verdict is None else verdict_json(analysis.verdict),
    }
    return plain(summary)
