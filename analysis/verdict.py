"""Claims that replicate: dominance over a baseline confirmed by seeds, and hypervolume intervals.

A confirmed MixTraining configuration (2+ seeds) *dominates* a baseline (2+ seeds) when its
means are at least as good on every objective and, on each objective where it claims to be
better, a one-sided Welch t-test over the seed values gives p < 0.05 after Holm's correction
across every test the report makes. Single-seed configurations are never tested.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.configs import MIX, group_configs, mark_config_front
from analysis.hypervolume import hypervolume
from analysis.pareto import to_minimize

ALPHA = 0.05
BASELINES = ("ssl_sl", "sl")  # the keys of `confirmed_dominance`
BOOTSTRAP_SAMPLES = 1000
# Means equal to this relative tolerance are a tie: the mean of three 0.8s is 0.8000000000000002,
# and an exact test would otherwise confirm a claim made of rounding.
TIE_RTOL = 1e-9
TEST_RULE = (
    "one-sided Welch t-test (scipy.stats.ttest_ind, equal_var=False) over seed values on each "
    "objective where the configuration's mean is better than the baseline's, for every "
    "confirmed configuration whose means are at least as good on every objective; p-values "
    "Holm-corrected across all these tests; a claim holds when every one of its tests has "
    "corrected p < 0.05. When both samples are constant (a deterministic metric such as "
    "calibrated_latency_s) the difference is exact: p = 0 and the interval is the difference."
)


@dataclass(frozen=True)
class Verdict:
    """Configurations, the tests behind each dominance claim, and hypervolume intervals.

    `tests` has one row per (config_id, baseline, metric) tested: `diff` (configuration mean
    minus baseline mean, natural units), `ci_low`/`ci_high` (95% two-sided Welch interval of
    the difference), `p` (one-sided, raw) and `p_holm`.
    """

    configs: pd.DataFrame
    tests: pd.DataFrame
    confirmed_dominance: dict[str, list[str]]
    untestable: dict[str, str] = field(default_factory=dict)  # baseline -> why no claim
    unconfirmed_dominating: dict[str, list[str]] = field(default_factory=dict)
    hypervolume: dict[str, Any] = field(default_factory=dict)


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
    alternative = "greater" if goal == "maximize" else "less"
    with warnings.catch_warnings():
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            # One side is exactly constant (variance exactly 0): scipy's "precision loss"
            # warning about nearly identical data does not apply.
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
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
    c = to_minimize([config[f"{m}_mean"] for m in metrics], goals)[0]
    b = to_minimize([base[f"{m}_mean"] for m in metrics], goals)[0]
    tie = is_tie(c, b)
    better, worse = (c < b) & ~tie, (c > b) & ~tie
    if worse.any() or not better.any():
        return None
    return [m for m, flag in zip(metrics, better, strict=True) if flag]


def dominance_tests(
    configs: pd.DataFrame, done: pd.DataFrame, metrics: Sequence[str], goals: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every test the claims need (before correction), and why a baseline could not be tested."""
    rows, untestable = [], {}
    by_id = {cid: r for cid, r in done.groupby("config_id", sort=False)}
    confirmed = configs[(configs["pipeline"] == MIX) & configs["confirmed"]]
    for baseline in BASELINES:
        base = configs[configs["pipeline"] == baseline]
        if base.empty:
            untestable[baseline] = "no complete trial"
            continue
        base = base.sort_values("n", ascending=False).iloc[0]
        if base["n"] < 2:
            untestable[baseline] = "one seed (add seeds under baselines.seeds)"
            continue
        for _, config in confirmed.iterrows():
            better = mean_dominates(config, base, metrics, goals)
            for m in better or []:
                goal = goals[list(metrics).index(m)]
                a, b = by_id[config["config_id"]][m], by_id[base["config_id"]][m]
                p, diff, low, high = welch_one_sided(a, b, goal)
                rows.append([config["config_id"], baseline, m, goal, diff, low, high, p])
    columns = ["config_id", "baseline", "metric", "goal", "diff", "ci_low", "ci_high", "p"]
    return pd.DataFrame(rows, columns=columns), untestable


def confirmed_claims(tests: pd.DataFrame) -> dict[str, list[str]]:
    """Per baseline: the configurations all of whose tests pass after Holm's correction."""
    out: dict[str, list[str]] = {b: [] for b in BASELINES}
    for (cid, baseline), rows in tests.groupby(["config_id", "baseline"], sort=False):
        if (rows["p_holm"] < ALPHA).all():
            out[str(baseline)].append(str(cid))
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
            for _, c in single.iterrows()
            if mean_dominates(c, base, metrics, goals)
        ]
    return out


def seed_values(done: pd.DataFrame, configs: pd.DataFrame, metrics) -> list[np.ndarray]:
    """Per configuration (row order of `configs`): its seeds' values [n, M]."""
    by_id = {cid: rows for cid, rows in done.groupby("config_id", sort=False)}
    return [by_id[cid][list(metrics)].to_numpy(dtype=float) for cid in configs["config_id"]]


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
    The bootstrap is seeded (0) so a report is reproducible.
    """
    if reference is None or configs.empty:
        return {}
    ref = to_minimize(np.asarray(reference, dtype=float), goals)[0]
    rng = np.random.default_rng(0)
    mix = configs[configs["pipeline"] == MIX]
    base = configs[configs["pipeline"] != MIX]
    single_front = int((mix["on_front"] & ~mix["confirmed"]).sum())
    single_base = int((~base["confirmed"]).sum())
    out = {
        "mixtraining": hypervolume_interval(
            seed_values(done, mix, metrics), goals, ref, samples, rng, single_front
        ),
        "baselines": hypervolume_interval(
            seed_values(done, base, metrics), goals, ref, samples, rng, single_base
        ),
    }
    out["ahead"] = interval_ahead(out["mixtraining"], out["baselines"])
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
) -> Verdict:
    """The verdict of the complete trials (which must carry `config_id`).

    Args:
        done: complete trials, one row each, with `config_id`, `pipeline`, `seed`, metrics.
        metrics: the objectives; goals: maximize | minimize for each.
        knobs: the searched knobs (copied onto the configuration rows).
        reference: the hypervolume reference point in natural units (None: no hypervolume).
        samples: bootstrap resamples (0 skips the interval, as the simulation test does).
    """
    configs = mark_config_front(group_configs(done, metrics, knobs), metrics, goals)
    tests, untestable = dominance_tests(configs, done, metrics, goals)
    tests["p_holm"] = holm(tests["p"].to_numpy()) if len(tests) else []
    volumes = (
        hypervolume_verdict(configs, done, metrics, goals, reference, samples) if samples else {}
    )
    return Verdict(
        configs,
        tests,
        confirmed_claims(tests),
        untestable,
        unconfirmed_winners(configs, metrics, goals),
        volumes,
    )
