"""An experiment's trials as one table (`trials.parquet`) and the closing summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.choose import config_scores
from analysis.configs import BASIS_TEXT, config_id
from analysis.load import FINAL_METRICS
from search_spaces import SearchSpace
from trainers import plan_for
from trainers.files import write_atomic
from tune_app.scheduler import STOPPED_KEY
from tune_app.suggestion import space_settings, suggested_config

TABLE = "trials.parquet"
# What a trial itself spent, beside its recipe's cost: training seconds it ran, and SSL epochs
# it took from the experiment's SSL cache instead of training them.
ECONOMY_METRICS = ("compute_s", "ssl_epochs_reused")


def trial_row(
    space: SearchSpace,
    trial_id: str,
    status: str,
    suggested: dict[str, Any],
    last: dict[str, Any],
    error: str | None,
) -> dict[str, Any]:
    """One trials.parquet row: identity, knobs (None for baselines), settings, final metrics.

    `role` is `search` (a sampled MixTraining trial), `confirm` (a configuration re-run with
    another seed; the suggestion says so) or `baseline`; `config_id` is the same for every
    seed of one configuration (`analysis.configs.config_id`).
    """
    config, role = suggested_config(space_settings(space), suggested)
    pipeline = config.pipeline
    row: dict[str, Any] = {
        "trial_id": trial_id,
        "pipeline": pipeline,
        "seed": config.seed,
        "status": status,
        "role": role,
    }
    settings = config.to_dict()
    for name in space.parameters:  # the searched knobs mean nothing for a baseline
        value = settings.pop(name)
        row[name] = value if pipeline == "mixtraining" else None
    row["config_id"] = config_id(pipeline, {k: row[k] for k in space.parameters}, space.trainer)
    settings.pop("pipeline"), settings.pop("seed")
    row.update(settings)
    planned = last.get("epochs_planned") or sum(e for _, e in plan_for(config))
    row.update({"epochs_done": last.get("epoch", 0), "epochs_planned": planned})
    row.update({m: last.get(m) for m in FINAL_METRICS})
    row.update({m: last.get(m) for m in ECONOMY_METRICS})
    row["gpu_mem_peak_gb"] = last.get("gpu_mem_peak_gb")  # the trial's GPU peak; None on a CPU
    row.update({k: last.get(k) for k in ("node_id", "node_type", "gpu_ids")})
    # Supervised epochs at the rung where search.scheduler stopped it; None if never stopped.
    row["stopped_at_rung"] = last.get(STOPPED_KEY)
    row["complete"] = (
        status == "TERMINATED"
        and row["epochs_done"] == planned
        and not error
        and row["stopped_at_rung"] is None
    )
    row["error"] = error
    return row


def write_table(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    """Write trials.parquet atomically (`trainers.files.write_atomic`)."""
    table = pd.DataFrame(rows)
    write_atomic(path, lambda tmp: table.to_parquet(tmp, index=False))
    return table


def summary_text(table: pd.DataFrame, experiment: Path) -> str:
    """What a person needs after a search: where, how many, the front, the baselines, next steps.

    Built on `analysis` (the same numbers `tune-app analyze` reports), from trials.parquet.
    """
    from analysis import analyze_experiment, load_experiment
    from analysis.report import headline

    found = analyze_experiment(load_experiment(experiment))
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    lines = [
        f"Experiment: {experiment}",
        f"Trials: {len(table)} ({', '.join(f'{n} {s.lower()}' for s, n in counts.items())})",
        *headline(found),
        *economy_lines(table),
        *stopped_lines(table),
    ]
    exp = found.experiment
    if len(found.front_configs):
        lines += ["", f"Pareto front, over {BASIS_TEXT[found.basis]}:"]
        for _, c in found.front_configs.iterrows():
            knobs = " ".join(
                f"{k} {_fmt(c[k]) if isinstance(c[k], float) else c[k]}" for k in exp.knobs
            )
            seeds = f"seed {c['seeds'][0]}" if c["n"] == 1 else f"{c['n']} seeds"
            lines.append(f"  {c['config_id']}  {knobs} ({seeds}): {config_scores(c, exp.metrics)}")
    base = found.done[found.done["pipeline"] != "mixtraining"]
    if len(base):
        stats = base.groupby("pipeline")[exp.metrics].agg(["mean", "std", "count"])
        lines += ["", "Baselines (mean, std, seeds):", stats.to_string(float_format=_fmt)]
    for _, r in table[table["status"] == "ERROR"].head(5).iterrows():
        lines.append(f"failed {r['trial_id']}: {str(r['error']).strip().splitlines()[-1]}")
    lines += [
        "",
        "Next:",
        f"  tune-app analyze {experiment}",
        f"  tune-app export {experiment} --select knee --out best.yaml",
        f"  tune-app dashboard {experiment}   # the Optuna study (tune-app[dashboard])",
    ]
    return "\n".join(lines)


def economy_lines(table: pd.DataFrame) -> list[str]:
    """What the search really cost: its training seconds, and the SSL epochs it reused."""
    if not len(table) or "compute_s" not in table or table["compute_s"].isna().all():
        return []
    compute = float(table["compute_s"].fillna(0).sum())
    recipes = float(table["train_latency_s"].fillna(0).sum())
    reused = int(table["ssl_epochs_reused"].fillna(0).sum())
    return [
        f"Training compute: {compute:.1f} s spent by the trials (their recipes' latency sums to "
        f"{recipes:.1f} s); SSL epochs reused from the cache: {reused}"
    ]


def stopped_lines(table: pd.DataFrame) -> list[str]:
    """How many trials search.scheduler stopped (PRUNED in the study, never on a front)."""
    if "stopped_at_rung" not in table or table["stopped_at_rung"].isna().all():
        return []
    rungs = table["stopped_at_rung"].dropna().astype(int).value_counts().sort_index()
    at = ", ".join(f"{n} at {r} supervised epoch(s)" for r, n in rungs.items())
    return [f"Stopped early by search.scheduler: {int(rungs.sum())} ({at})"]


def _fmt(v: float) -> str:
    return "nan" if v is None or np.isnan(v) else f"{v:.4g}"
