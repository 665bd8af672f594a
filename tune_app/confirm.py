"""Which configurations a confirmation phase runs: the best single-seed MixTraining
configurations, each with every extra seed it has not run yet.

After the sampled trials end, the K best configurations of the single-seed front (front first,
within it by hypervolume contribution, filled from the next fronts: `analysis.pareto.rank_points`)
are run again with each extra seed, as trials of the same experiment with `role: confirm`.
Running them is the experiment controller's job (`tune_app.experiment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from analysis.configs import canonical
from analysis.pareto import rank_points
from search_spaces import SearchSpace


def best_configs(table: pd.DataFrame, space: SearchSpace, top_k: int) -> pd.DataFrame:
    """The `top_k` best complete single-seed (`role: search`) MixTraining configurations.

    One row per configuration (its first trial); ranked by `rank_points` on the objectives.
    """
    metrics = [o.metric for o in space.objectives]
    done = table[(table["role"] == "search") & table["complete"]].dropna(subset=metrics)
    done = done.drop_duplicates("config_id")
    order = rank_points(done[metrics].to_numpy(dtype=float), [o.goal for o in space.objectives])
    return done.iloc[order[:top_k]]


def plan(
    table: pd.DataFrame, space: SearchSpace, top_k: int, seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """The confirm trials to run: each best configuration with each seed it has not yet run.

    Returns:
        Ray configs: the configuration's searched knobs, `pipeline`, `seed`, `role: confirm`.
    """
    ran = set(zip(table["config_id"], table["seed"].map(canonical), strict=True))
    knobs = list(space.searched)
    configs = []
    for _, row in best_configs(table, space, top_k).iterrows():
        for seed in seeds:
            if (row["config_id"], seed) not in ran:
                config = {k: canonical(row[k]) for k in knobs}
                configs.append(
                    {**config, "pipeline": "mixtraining", "seed": seed, "role": "confirm"}
                )
    return configs
