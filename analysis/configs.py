"""Configurations: every seed of one recipe grouped under one `config_id`.

A configuration is a pipeline, its searched knob values (none for a baseline) and the space's
fixed trainer settings; the seed is not part of it (nor `num_threads`, an execution detail of
the Ray slot). Its statistics (mean, sample std, n of each objective) are what a claim rests
on: a configuration with one seed is shown but marked unconfirmed, and never makes a claim.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.hypervolume import knee_index
from analysis.pareto import pareto_mask, to_minimize

NOT_IN_CONFIG = ("seed", "num_threads")
ID_LENGTH = 12  # hex digits of sha256: collisions are negligible for any search's size
MIX = "mixtraining"
# What a front, a knee and an export choose among (summary.json's `choice_basis`).
BY_CONFIG = "configurations"  # confirmed ones (2+ seeds), by their means over seeds
BY_CONFIG_ALL = "configurations, single-seed ones included"  # export --include-unconfirmed
BY_RUN = "single runs"  # no configuration has a second seed: one seed's result each
BASIS_TEXT = {
    BY_CONFIG: "confirmed configurations (means over their seeds)",
    BY_CONFIG_ALL: "configurations' means, single-seed ones included (--include-unconfirmed)",
    BY_RUN: "single runs (no configuration ran a second seed)",
}


def canonical(value: Any) -> Any:
    """A JSON-ready value that compares equal however the table stored it.

    Parquet turns an int column with nulls into floats and numpy scalars leak from pandas, so
    3, 3.0 and np.int64(3) must hash alike; NaN and None both mean "not set".
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    return value


def config_id(pipeline: str, knobs: Mapping[str, Any], fixed: Mapping[str, Any]) -> str:
    """A stable id for a configuration: the same for every seed, different across recipes.

    Args:
        pipeline: mixtraining | sl | ssl_sl.
        knobs: the searched knob values (ignored for a baseline, where they mean nothing).
        fixed: the space's fixed trainer settings (`seed` and `num_threads` are ignored).

    Returns:
        The first 12 hex digits of a sha256 over the canonical JSON of the three.
    """
    settings = {k: canonical(v) for k, v in fixed.items() if k not in NOT_IN_CONFIG}
    searched = {k: canonical(v) for k, v in knobs.items()} if pipeline == MIX else {}
    settings.update(searched)  # a searched knob overrides a fixed value of the same name
    text = json.dumps({"pipeline": pipeline, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def config_ids(table: pd.DataFrame, space: Mapping[str, Any]) -> pd.Series:
    """The `config_id` of every row: the table's own column where set, else computed.

    Experiments written before the column existed (or Ray's files) get the same ids the
    search would have written, from the knobs and the space's fixed `trainer` settings.
    """
    knobs, fixed = list(space.get("parameters") or {}), dict(space.get("trainer") or {})
    computed = [
        config_id(str(row["pipeline"]), {k: row.get(k) for k in knobs}, fixed)
        for _, row in table.iterrows()
    ]
    ids = pd.Series(computed, index=table.index, dtype=object)
    if "config_id" in table:
        given = table["config_id"]
        ids = given.where(given.notna(), ids).astype(object)
    return ids


def config_stats(values: np.ndarray, metrics: Sequence[str]) -> dict[str, Any]:
    """Mean, sample std (NaN for one seed) and n of each metric; values: [n, M]."""
    out: dict[str, Any] = {"n": len(values)}
    for k, m in enumerate(metrics):
        out[f"{m}_mean"] = float(values[:, k].mean())
        out[f"{m}_std"] = float(values[:, k].std(ddof=1)) if len(values) > 1 else math.nan
    return out


def group_configs(
    done: pd.DataFrame,
    metrics: Sequence[str],
    knobs: Sequence[str],
    extras: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per configuration of the complete trials (which must carry `config_id`).

    Args:
        done: complete trials with `config_id`, `pipeline`, `seed`, `trial_id` and `metrics`.
        metrics: the objectives; `confirmed` and every claim rest on these.
        knobs: the searched knobs, copied from each configuration's first row.
        extras: other metrics to summarise the same way when `done` has them (e.g.
            `test_accuracy`, shown beside a choice, never used to make it).

    Returns:
        Columns `config_id`, `pipeline`, the knobs (first row's values), `n`, `confirmed`
        (n >= 2), `<metric>_mean`, `<metric>_std` (objectives, then extras), `trial_ids` and
        `seeds` (lists, seed order). Rows in first-appearance order.
    """
    summarised = [*metrics, *(e for e in extras if e in done and e not in metrics)]
    columns = ["config_id", "pipeline", *knobs, "n", "confirmed"]
    columns += [f"{m}_{s}" for m in summarised for s in ("mean", "std")] + ["trial_ids", "seeds"]
    if done.empty:
        return pd.DataFrame(columns=columns)
    # numpy per group: pandas row access on a wide table is far slower (simulation test).
    values = done[summarised].to_numpy(dtype=float)
    seeds, ids = done["seed"].to_numpy(), done["trial_id"].astype(str).to_numpy()
    first = {c: done[c].to_numpy(dtype=object) for c in ["pipeline", *knobs] if c in done}
    records = []
    for cid, idx in done.groupby("config_id", sort=False).indices.items():
        idx = idx[np.argsort(seeds[idx], kind="stable")]
        record = {"config_id": cid, **{k: None for k in knobs}}
        record.update({c: column[idx[0]] for c, column in first.items()})
        record.update(config_stats(values[idx], summarised))
        record["confirmed"] = record["n"] >= 2
        record["trial_ids"] = ids[idx].tolist()
        record["seeds"] = [canonical(s) for s in seeds[idx]]
        records.append(record)
    return pd.DataFrame(records)[columns]


def choice_pool(configs: pd.DataFrame, include_unconfirmed: bool = False) -> np.ndarray:
    """[rows] the MixTraining configurations a front, knee or export may choose from.

    When any MixTraining configuration is confirmed (2+ seeds), only confirmed ones: a single
    run is one draw of its seed noise, and the best of many single draws is biased upwards
    (the winner's curse). Without any confirmed one, or with `include_unconfirmed`, all.
    """
    mix = (configs["pipeline"] == MIX).to_numpy(dtype=bool)
    confirmed = mix & configs["confirmed"].to_numpy(dtype=bool)
    return confirmed if confirmed.any() and not include_unconfirmed else mix


def choice_basis(configs: pd.DataFrame, include_unconfirmed: bool = False) -> str:
    """What the front and knee rest on: `BY_CONFIG`, `BY_CONFIG_ALL` or `BY_RUN`."""
    mix = configs[configs["pipeline"] == MIX]
    if mix.empty or not bool(mix["confirmed"].any()):
        return BY_RUN
    return BY_CONFIG_ALL if include_unconfirmed else BY_CONFIG


def mark_config_front(
    configs: pd.DataFrame,
    metrics: Sequence[str],
    goals: Sequence[str],
    pool: np.ndarray | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Add `on_front` and `knee` over the configuration means of the rows in `pool`.

    Args:
        configs: `group_configs` rows.
        metrics, goals: the objectives.
        pool: [rows] which configurations may be on the front (default: `choice_pool`).
            Baseline rows never are: they are what the front is compared with.
        bounds: (best, worst) lower-is-better values normalising the knee's fallback rule
            (`analysis.hypervolume.KNEE_RULE`); default: the range of all configuration means.

    Front rows are ranked fastest first (the last objective, then the first), so a knee tie
    goes to the cheaper configuration, as the per-trial ranking did.
    """
    configs = configs.copy()
    configs["on_front"], configs["knee"] = False, False
    pool = choice_pool(configs) if pool is None else np.asarray(pool, dtype=bool)
    pool = pool & (configs["pipeline"] == MIX).to_numpy(dtype=bool)
    if not pool.any():
        return configs
    means = configs[[f"{m}_mean" for m in metrics]].to_numpy(dtype=float)
    front = np.zeros(len(configs), dtype=bool)
    front[pool] = pareto_mask(means[pool], goals)
    configs["on_front"] = front
    costs = to_minimize(means, goals)
    front_idx = np.flatnonzero(front)
    front_idx = front_idx[np.lexsort(costs[front_idx].T)]
    if bounds is None:
        bounds = (costs.min(axis=0), costs.max(axis=0))
    knee = front_idx[knee_index(costs[front_idx], bounds)]
    configs.loc[configs.index[knee], "knee"] = True
    return configs
