"""Claims that replicate: dominance over a baseline confirmed by seeds, and hypervolume intervals.

A confirmed MixTraining configuration (2+ seeds) *dominates* a baseline (2+ seeds) when its
means are at least as good on every objective and, on each objective where it claims to be
better, a one-sided Welch t-test over the seed values gives p < 0.05 after Holm's correction
across every claim the report assesses (see `TEST_RULE`). Single-seed configurations are
never tested.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.configs import (
    BY_RUN,
    MIX,
    choice_basis,
    choice_pool,
    group_configs,
    mark_config_front,
)
from analysis.hypervolume import hypervolume
from analysis.pareto import pareto_mask, to_minimize

ALPHA = 0.05
BASELINES = ("ssl_sl", "sl")  # the keys of `confirmed_dominance`
BOOTSTRAP_SAMPLES = 1000
# Means equal to this relative tolerance are a tie: the mean of three 0.8s is 0.8000000000000002,
# and an exact test would otherwise confirm a claim made of rounding.
TIE_RTOL = 1e-9
TEST_RULE = (
    "every confirmed configuration (2+ seeds) is assessed against every baseline with 2+ seeds. "
    "It can dominate only if its means are at least as good on every objective; then each "
    "objective where its mean is better gets a one-sided Welch t-test (scipy.stats.ttest_ind, "
    "equal_var=False) over the seed values, and the claim's p-value is the largest of them "
    "(all must hold). Holm's correction runs across all assessed claims (p = 1 for those whose "
    "means do not dominate); a claim holds when its corrected p < 0.05. When both samples are "
    "constant (a deterministic metric such as calibrated_latency_s) the difference is exact: "
    "p = 0 and the interval is the difference."
)


@dataclass(frozen=True)
class Verdict:
    """Configurations, the tests behind each dominance claim, and hypervolume intervals.

    `tests` has one row per (config_id, baseline, metric) tested: `diff` (configuration mean
    minus baseline mean, natural units), `ci_low`/`ci_high` (95% two-sided Welch interval of
    the difference), `p` (one-sided, raw) and `p_holm` (its claim's Holm-adjusted p).
    """

    configs: pd.DataFrame
    tests: pd.DataFrame
    confirmed_dominance: dict[str, list[str]]
    claims: pd.DataFrame  # one row per (confirmed config, testable baseline): p, p_holm
    untestable: dict[str, str] = field(default_factory=dict)  # baseline -> why no claim
    unconfirmed_dominating: dict[str, list[str]] = field(default_factory=dict)
    hypervolume: dict[str, Any] = field(default_factory=dict)
    basis: str = BY_RUN  # what `configs`' on_front and knee chose among (analysis.configs)


def welch_one_sided(a: np.ndarray, b: np.ndarray, goal: str) -> tuple[float, float, float, float]:
    """Is `a` better than `b` (greater for maximize, less for minimize)?

    Args:
        a: the configuration's seed values (n >= 2).
        b: the baseline's seed values (n >= 2).
        goal: maximize | minimize.

    Returns:
        (p, diff, ci_low, ci_high): one-sided p-value, mean(a) - mean(b), and the 95%
        two-sided Welch interval of that difference.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a Welch test needs at least two values on each side")
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        # No seed noise at all: the difference is exact (scipy would divide by zero).
        tie = is_tie(a.mean(), b.mean())
        better = not tie and (diff > 0 if goal == "maximize" else diff < 0)
        return (0.0 if better else 1.0), diff, diff, diff
    with warnings.catch_warnings():
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            # One side is exactly constant (variance exactly 0): scipy's "precision loss"
            # warning about nearly identical data does not apply.
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
        alternative = "greater" if goal == "maximize" else "less"
        p = stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue
        interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(1 - ALPHA)
    return float(p), diff, float(interval.low), float(interval.high)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where adjusted < alpha controls the FWER.

    The i-th smallest p (0-based) is multiplied by m - i, then made monotone non-decreasing
    in that order and capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def is_tie(a: float | np.ndarray, b: float | np.ndarray) -> np.ndarray:
    """Equal up to `TIE_RTOL` relative to the larger magnitude (and at least 1e-12 absolute)."""
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-3)
    return np.abs(np.asarray(a) - np.asarray(b)) <= TIE_RTOL * scale


def mean_dominates(config: pd.Series, base: pd.Series, metrics, goals) -> list[str] | None:
    """Objectives where `config`'s mean is better, if it is no worse anywhere and better once.

    Means within `TIE_RTOL` of each other count as equal.
    """
    c = to_minimize(np.array([config[f"{m}_mean"] for m in metrics]), goals)[0]
    b = to_minimize(np.array([base[f"{m}_mean"] for m in metrics]), goals)[0]
    tie = is_tie(c, b)
    better, worse = (c < b) & ~tie, (c > b) & ~tie
    if worse.any() or not better.any():
        return None
    return [m for m, flag in zip(metrics, better, strict=True) if flag]


def baseline_config(configs: pd.DataFrame, baseline: str) -> tuple[pd.Series | None, str | None]:
    """The baseline's configuration (most seeds), or None and why it cannot be tested."""
    rows = configs[configs["pipeline"] == baseline]
    if rows.empty:
        return None, "no complete trial"
    base = rows.sort_values("n", ascending=False, kind="stable").iloc[0]
    if base["n"] < 2:
        return None, "one seed (add seeds under baselines.seeds)"
    return base, None


def claim_tests(config, base, by_id, baseline, metrics, goals) -> list[list[Any]]:
    """The Welch tests of one claim: one per objective where the config's mean is better."""
    rows = []
    for m in mean_dominates(config, base, metrics, goals) or []:
        goal = goals[list(metrics).index(m)]
        k = list(metrics).index(m)
        a, b = by_id[config["config_id"]][:, k], by_id[base["config_id"]][:, k]
        rows.append([config["config_id"], baseline, m, goal, *welch_one_sided(a, b, goal)])
    return rows


def dominance_tests(
    configs: pd.DataFrame, done: pd.DataFrame, metrics: Sequence[str], goals: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Every claim the report assesses, the tests behind them, and untestable baselines.

    A claim is (confirmed configuration, testable baseline): the report states for every
    such pair whether it holds, so every pair is in the correction's family. Its p-value is
    the largest of its tests' (it holds only if all do; an intersection-union test), or 1
    when its means do not dominate (nothing to test).
    """
    tests: list[list[Any]] = []
    claims: list[list[Any]] = []
    untestable: dict[str, str] = {}
    by_id = values_by_config(done, metrics)
    confirmed = configs[(configs["pipeline"] == MIX) & configs["confirmed"]]
    for baseline in BASELINES:
        base, why = baseline_config(configs, baseline)
        if base is None:
            untestable[baseline] = str(why)  # always a reason when there is no baseline
            continue
        for config in confirmed.to_dict("records"):
            rows = claim_tests(config, base, by_id, baseline, metrics, goals)
            p = max((r[4] for r in rows), default=1.0)
            claims.append([config["config_id"], baseline, bool(rows), p])
            tests += rows
    columns = ["config_id", "baseline", "metric", "goal", "p", "diff", "ci_low", "ci_high"]
    claim_columns = ["config_id", "baseline", "means_dominate", "p"]
    return (
        pd.DataFrame(tests, columns=columns),
        pd.DataFrame(claims, columns=claim_columns),
        untestable,
    )


def confirmed_claims(claims: pd.DataFrame) -> dict[str, list[str]]:
    """Per baseline: the configurations whose claim passes after Holm's correction."""
    out: dict[str, list[str]] = {b: [] for b in BASELINES}
    for _, c in claims[claims["means_dominate"] & (claims["p_holm"] < ALPHA)].iterrows():
        out[str(c["baseline"])].append(str(c["config_id"]))
    return out


def unconfirmed_winners(
    configs: pd.DataFrame, metrics: Sequence[str], goals: Sequence[str]
) -> dict[str, list[str]]:
    """Single-seed configurations whose one run beats a baseline's mean: shown, never claimed."""
    single = configs[(configs["pipeline"] == MIX) & ~configs["confirmed"]]
    out: dict[str, list[str]] = {}
    for baseline in BASELINES:
        base = configs[configs["pipeline"] == baseline]
        if base.empty:
            continue
        base = base.sort_values("n", ascending=False).iloc[0]
        out[baseline] = [
            str(c["config_id"])
            for c in single.to_dict("records")
            if mean_dominates(c, base, metrics, goals)
        ]
    return out


def values_by_config(done: pd.DataFrame, metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """config_id -> its seeds' objective values [n, M]."""
    values = done[list(metrics)].to_numpy(dtype=float)
    groups = done.groupby("config_id", sort=False).indices if len(done) else {}
    return {cid: values[idx] for cid, idx in groups.items()}


def seed_values(done: pd.DataFrame, configs: pd.DataFrame, metrics) -> list[np.ndarray]:
    """Per configuration (row order of `configs`): its seeds' values [n, M]."""
    by_id = values_by_config(done, metrics)
    return [by_id[cid] for cid in configs["config_id"]]


def bootstrap_means(values: list[np.ndarray], samples: int, rng: np.random.Generator):
    """[samples, configs, M]: each configuration's mean over its seeds drawn with replacement."""
    out = np.empty((samples, len(values), values[0].shape[1] if values else 0))
    for j, v in enumerate(values):
        idx = rng.integers(0, len(v), size=(samples, len(v)))
        out[:, j, :] = v[idx].mean(axis=1)
    return out


def hypervolume_interval(
    values: list[np.ndarray],
    goals: Sequence[str],
    ref: np.ndarray,
    samples: int,
    rng: np.random.Generator,
    unconfirmed: int,
) -> dict[str, Any]:
    """Hypervolume of the configuration means and its 95% percentile bootstrap interval.

    `unconfirmed` counts single-seed configurations that shape this side's volume: their noise
    is unknown, so a bootstrap over seeds would understate the interval; it is still computed
    but `ahead` is not decided while any remain.
    """
    if not values:
        return {"value": 0.0, "low": None, "high": None, "unconfirmed": 0}
    point = np.array([v.mean(axis=0) for v in values])
    value = hypervolume(to_minimize(point, goals), ref)
    draws = bootstrap_means(values, samples, rng)
    volumes = [hypervolume(to_minimize(d, goals), ref) for d in draws]
    low, high = np.percentile(volumes, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return {
        "value": float(value),
        "low": float(low),
        "high": float(high),
        "unconfirmed": unconfirmed,
    }


def hypervolume_verdict(
    configs: pd.DataFrame,
    done: pd.DataFrame,
    metrics: Sequence[str],
    goals: Sequence[str],
    reference: np.ndarray | None,
    samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, Any]:
    """MixTraining front vs all baseline means, over configuration means, with intervals.

    `ahead` names the side whose interval lies wholly above the other's, else None (also
    when a single-seed configuration is on the MixTraining front or among the baselines).
    The volumes are in the objectives' own units (`units`, e.g. accuracy x seconds), so they
    can exceed 1; report.md's hypervolume table also gives each volume as a fraction of the box.
    The bootstrap is seeded (0) so a report is reproducible.
    """
    if reference is None or configs.empty:
        return {}
    ref = to_minimize(np.asarray(reference, dtype=float), goals)[0]
    rng = np.random.default_rng(0)
    mix = configs[configs["pipeline"] == MIX]
    base = configs[configs["pipeline"] != MIX]
    # Which single-seed configurations shape the volume: those non-dominated among all
    # MixTraining means (the chosen front may leave them out; the volume does not).
    means = mix[[f"{m}_mean" for m in metrics]].to_numpy(dtype=float)
    shaping = pareto_mask(means, goals) if len(mix) else np.zeros(0, dtype=bool)
    single_front = int((shaping & ~mix["confirmed"].to_numpy(dtype=bool)).sum())
    single_base = int((~base["confirmed"]).sum())
    out: dict[str, Any] = {
        "mixtraining": hypervolume_interval(
            seed_values(done, mix, metrics), goals, ref, samples, rng, single_front
        ),
        "baselines": hypervolume_interval(
            seed_values(done, base, metrics), goals, ref, samples, rng, single_base
        ),
    }
    out["ahead"] = interval_ahead(out["mixtraining"], out["baselines"])
    out["units"] = " x ".join(metrics)
    return out


def interval_ahead(mix: dict[str, Any], base: dict[str, Any]) -> str | None:
    """The side whose interval lies wholly above the other's; None if they overlap or if
    either side rests on a single-seed configuration."""
    if None in (mix["low"], base["low"]) or mix["unconfirmed"] or base["unconfirmed"]:
        return None
    if mix["low"] > base["high"]:
        return "mixtraining"
    if base["low"] > mix["high"]:
        return "baselines"
    return None


def build_verdict(
    done: pd.DataFrame,
    metrics: Sequence[str],
    goals: Sequence[str],
    knobs: Sequence[str],
    reference: np.ndarray | None = None,
    samples: int = BOOTSTRAP_SAMPLES,
    include_unconfirmed: bool = False,
    extras: Sequence[str] = (),
) -> Verdict:
    """The verdict of the complete trials (which must carry `config_id`).

    Args:
        done: complete trials, one row each, with `config_id`, `pipeline`, `seed`, metrics.
        metrics: the objectives; goals: maximize | minimize for each.
        knobs: the searched knobs (copied onto the configuration rows).
        reference: the hypervolume reference point in natural units (None: no hypervolume).
        samples: bootstrap resamples (0 skips the interval, as the simulation test does).
        include_unconfirmed: let single-seed configurations onto the front when confirmed
            ones exist (`analysis.configs.choice_pool`).
        extras: other metrics summarised per configuration (`group_configs`).
    """
    # Only the columns used: grouping a wide trials table copies every column of every group.
    needed = ["trial_id", "config_id", "pipeline", "seed", *knobs, *metrics, *extras]
    done = done[[c for c in dict.fromkeys(needed) if c in done]]
    configs = group_configs(done, metrics, knobs, extras)
    costs = to_minimize(done[list(metrics)].to_numpy(dtype=float), goals)
    bounds = (costs.min(axis=0), costs.max(axis=0)) if len(done) else None
    pool = choice_pool(configs, include_unconfirmed)
    configs = mark_config_front(configs, metrics, goals, pool, bounds)
    tests, claims, untestable = dominance_tests(configs, done, metrics, goals)
    claims["p_holm"] = holm(claims["p"].to_numpy()) if len(claims) else []
    adjusted = claims.set_index(["config_id", "baseline"])["p_holm"]
    keys = list(zip(tests["config_id"], tests["baseline"], strict=True))
    tests["p_holm"] = [float(adjusted[k]) for k in keys]
    volumes = (
        hypervolume_verdict(configs, done, metrics, goals, reference, samples) if samples else {}
    )
    return Verdict(
        configs,
        tests,
        confirmed_claims(claims),
        claims,
        untestable,
        unconfirmed_winners(configs, metrics, goals),
        volumes,
        choice_basis(configs, include_unconfirmed),
    )
