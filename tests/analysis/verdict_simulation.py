"""Synthetic experiments in the trials.parquet format, to measure how often a verdict is wrong.

Each experiment: 3 MixTraining configurations with seeds 0, 1, 2 (seed 0 from the search, 1
and 2 confirmation runs), 5 single-seed ones, and SSL+SL and SL with seeds 0, 1, 2. Accuracy
has the seed noise of the real baselines (std 1.1 points). Scenarios:

- `null_calibrated`: MixTraining equals SSL+SL in distribution; the cost is a calibrated one
  (deterministic, equal), so claims can rest on accuracy alone.
- `null_measured`: the same, with a measured cost (noisy, same distribution).
- `better`: MixTraining +3 accuracy points and 5% cheaper (calibrated) than SSL+SL.

Run `.venv/bin/python -m tests.analysis.verdict_simulation` (from the repository root) for
the rates docs/benchmarks.md quotes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.configs import config_id
from analysis.verdict import build_verdict
from tests.support import ANALYSIS_SPACE, trial

SPACE = {
    **ANALYSIS_SPACE,
    "objectives": [
        {"metric": "val_accuracy", "goal": "maximize"},
        {"metric": "calibrated_latency_s", "goal": "minimize"},
    ],
}
METRICS = [o["metric"] for o in SPACE["objectives"]]
GOALS = [o["goal"] for o in SPACE["objectives"]]
KNOBS = list(SPACE["parameters"])
CONFIRMED, SINGLE, SEEDS = 3, 5, (0, 1, 2)
ACC_STD, SSL_SL_ACC, SL_ACC = 0.011, 0.80, 0.75
SSL_SL_COST, SL_COST, MEASURED_STD = 40.0, 25.0, 2.0
SCENARIOS = {  # (accuracy shift, cost factor, cost noise std) of MixTraining vs SSL+SL
    "null_calibrated": (0.0, 1.0, 0.0),
    "null_measured": (0.0, 1.0, MEASURED_STD),
    "better": (0.03, 0.95, 0.0),
}


def with_identity(row: dict, role: str) -> dict:
    knobs = {k: row[k] for k in KNOBS}
    return {**row, "role": role, "config_id": config_id(row["pipeline"], knobs, SPACE["trainer"])}


def template() -> pd.DataFrame:
    """The rows of one experiment, metrics left to fill: a real trials.parquet table."""
    rows = []
    for c in range(CONFIRMED + SINGLE):
        alpha = 0.1 + 0.1 * c  # one distinct configuration each
        seeds = SEEDS if c < CONFIRMED else SEEDS[:1]
        for s in seeds:
            row = trial(f"m{c}s{s}", 0.0, 0.0, seed=s, alpha=alpha)
            rows.append(with_identity(row, "search" if s == 0 else "confirm"))
    for pipeline in ("ssl_sl", "sl"):
        for s in SEEDS:
            rows.append(with_identity(trial(f"{pipeline}{s}", 0.0, 0.0, pipeline, s), "baseline"))
    return pd.DataFrame(rows)


def fill(table: pd.DataFrame, scenario: str, rng: np.random.Generator) -> pd.DataFrame:
    """Draw every trial's objectives for one experiment of `scenario`."""
    shift, factor, noise = SCENARIOS[scenario]
    mix = (table["pipeline"] == "mixtraining").to_numpy()
    sl = (table["pipeline"] == "sl").to_numpy()
    mean_acc = np.where(mix, SSL_SL_ACC + shift, np.where(sl, SL_ACC, SSL_SL_ACC))
    mean_cost = np.where(mix, SSL_SL_COST * factor, np.where(sl, SL_COST, SSL_SL_COST))
    cost_noise = np.where(sl, 0.0, noise)  # SL plays no part in the SSL+SL claim
    out = table.copy()
    out["val_accuracy"] = rng.normal(mean_acc, ACC_STD)
    out["calibrated_latency_s"] = rng.normal(mean_cost, 1.0) * cost_noise + mean_cost
    return out


def simulate(scenario: str, experiments: int, seed: int = 0) -> dict[str, float]:
    """Rates over `experiments` synthetic experiments of one scenario.

    Returns:
        `any_claim`: fraction of experiments claiming some configuration dominates SSL+SL
        (under a null, the false-claim rate); `per_config`: fraction of the confirmed
        MixTraining configurations claimed; `single_claims`: claims by single-seed ones.
    """
    rng, base = np.random.default_rng(seed), template()
    single_ids = set(base.loc[base["role"].eq("search"), "config_id"]) - set(
        base.loc[base["role"].eq("confirm"), "config_id"]
    )
    any_claim = claimed = single = 0
    for _ in range(experiments):
        table = fill(base, scenario, rng)
        winners = build_verdict(table, METRICS, GOALS, KNOBS, samples=0).confirmed_dominance
        any_claim += bool(winners["ssl_sl"])
        claimed += len(winners["ssl_sl"])
        single += len(single_ids & set(winners["ssl_sl"]))
    return {
        "experiments": experiments,
        "any_claim": any_claim / experiments,
        "per_config": claimed / (experiments * CONFIRMED),
        "single_claims": single,
    }


if __name__ == "__main__":
    for name in SCENARIOS:
        print(name, simulate(name, 1000))
