"""Choosing what to export: configurations of the MixTraining front, after the user's filters.

The choice is among configurations (every seed of one recipe), by their means over seeds:
only confirmed ones (2+ seeds) when the experiment has any, unless the analysis was built with
`include_unconfirmed`; single runs when no configuration has a second seed (the export header
then says so). Baselines are never exported: their configs are the space's fixed settings with
a pipeline and seed, which a user writes by hand. Filters act on the configuration means of
`val_accuracy` and of the space's latency objective (`latency_metric`). The filtered front still
holds the best choice under the filters: anything dominating a feasible point is feasible too.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from analysis.configs import BASIS_TEXT, BY_CONFIG, BY_RUN, choice_pool
from analysis.fmt import fmt_value
from analysis.hypervolume import knee_index
from analysis.load import FROM_RAY, Experiment
from analysis.pareto import to_minimize
from analysis.summary import Analysis, left_out_counts

SELECTIONS = ("knee", "max-accuracy", "min-latency", "all-pareto")
ACCURACY = "val_accuracy"
LATENCIES = ("calibrated_latency_s", "train_latency_s")  # preferred order
SINGLE_RUN_WARNING = (
    "no configuration of this experiment ran a second seed, so this choice rests on single "
    "runs, whose accuracy includes their seed's luck; confirm the candidates first "
    "(`tune-app confirm EXP_DIR`, or search.confirm in the space)"
)


class NoMatch(ValueError):
    """Nothing to export; the message says what the best available was."""


def latency_metric(exp: Experiment) -> str:
    """The cost `--max-latency` and `min-latency` use: the space's latency objective
    (calibrated before measured), else the measured `train_latency_s`."""
    minimised = {m for m, g in zip(exp.metrics, exp.goals, strict=True) if g == "minimize"}
    return next((m for m in LATENCIES if m in minimised), "train_latency_s")


def mean_text(config: pd.Series, metric: str) -> str:
    """'0.6893 ± 0.0066' (sample std over seeds), or the one value of a single run."""
    mean, std = config.get(f"{metric}_mean"), config.get(f"{metric}_std")
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return fmt_value(metric, mean)
    return f"{fmt_value(metric, mean)} ± {fmt_value(metric, std)}"


def config_scores(config: pd.Series, metrics: list[str]) -> str:
    """'val_accuracy 0.6893 ± 0.0066, calibrated_latency_s 28.68 s ± 0.00 s'."""
    return ", ".join(f"{m} {mean_text(config, m)}" for m in metrics)


def candidates(analysis: Analysis) -> pd.DataFrame:
    """The MixTraining configurations the choice was made among (see the module docstring)."""
    if analysis.verdict is None:
        return pd.DataFrame()
    configs = analysis.verdict.configs
    return configs[choice_pool(configs, analysis.basis not in (BY_CONFIG, BY_RUN))]


def apply_filters(
    front: pd.DataFrame, exp: Experiment, max_latency: float | None, min_accuracy: float | None
) -> pd.DataFrame:
    keep = pd.Series(True, index=front.index)
    if max_latency is not None:
        keep &= front[f"{latency_metric(exp)}_mean"] <= max_latency
    if min_accuracy is not None:
        keep &= front[f"{ACCURACY}_mean"] >= min_accuracy
    return front[keep]


def best_available(analysis: Analysis) -> str:
    """The fastest and the most accurate candidate configuration, for error messages."""
    pool, exp = candidates(analysis), analysis.experiment
    if pool.empty:
        counts = ", ".join(f"{n} {r}" for r, n in sorted(left_out_counts(analysis).items()))
        return f"no complete MixTraining trial ({counts or 'no trials'})"
    latency = latency_metric(exp)
    fast = pool.loc[pool[f"{latency}_mean"].astype(float).idxmin()]
    good = pool.loc[pool[f"{ACCURACY}_mean"].astype(float).idxmax()]
    metrics = list(dict.fromkeys([latency, ACCURACY]))
    return (
        f"fastest: {identity(fast)}: {config_scores(fast, metrics)}; "
        f"most accurate: {identity(good)}: {config_scores(good, metrics)}"
    )


def identity(config: pd.Series) -> str:
    """'configuration 7b353e5a1828 (trials a1, b2, c3)'."""
    ids = [str(t) for t in config["trial_ids"]]
    noun = "trials" if len(ids) > 1 else "trial"
    return f"configuration {config['config_id']} ({noun} {', '.join(ids)})"


def select_configs(
    analysis: Analysis,
    how: str,
    max_latency: float | None = None,
    min_accuracy: float | None = None,
) -> pd.DataFrame:
    """Front configurations chosen by `how` (one of SELECTIONS) among those passing the filters.

    The knee is recomputed on the filtered front, so it is the knee of what the user allows.

    Raises:
        ValueError: `how` is not one of SELECTIONS.
        NoMatch: no complete trial, or no front configuration passes the filters.
    """
    if how not in SELECTIONS:
        raise ValueError(f"--select {how!r}: expected one of {', '.join(SELECTIONS)}")
    exp = analysis.experiment
    front = apply_filters(analysis.front_configs, exp, max_latency, min_accuracy)
    if front.empty:
        wanted = filter_text(exp, max_latency, min_accuracy)
        raise NoMatch(f"no front configuration{wanted}; best available: {best_available(analysis)}")
    if how == "all-pareto":
        return front
    if how == "max-accuracy":
        return front.loc[[front[f"{ACCURACY}_mean"].astype(float).idxmax()]]
    if how == "min-latency":
        return front.loc[[front[f"{latency_metric(exp)}_mean"].astype(float).idxmin()]]
    means = front[[f"{m}_mean" for m in exp.metrics]].to_numpy(dtype=float)
    done = to_minimize(analysis.done[exp.metrics].to_numpy(dtype=float), exp.goals)
    costs = to_minimize(means, exp.goals)
    return front.iloc[[knee_index(costs, (done.min(axis=0), done.max(axis=0)))]]


def filter_text(exp: Experiment, max_latency: float | None, min_accuracy: float | None) -> str:
    parts = []
    if max_latency is not None:
        parts.append(f"mean {latency_metric(exp)} <= {max_latency:g}")
    if min_accuracy is not None:
        parts.append(f"mean {ACCURACY} >= {min_accuracy:g}")
    return " with " + " and ".join(parts) if parts else ""


def seed_trial(analysis: Analysis, config: pd.Series, seed: int | None) -> pd.Series:
    """The trial of `config` run with `seed` (default: its lowest seed).

    Raises:
        NoMatch: the configuration has no complete trial with that seed (the message lists
            the seeds it has).
    """
    seeds = [int(s) for s in config["seeds"]]
    wanted = seeds[0] if seed is None else seed
    if wanted not in seeds:
        raise NoMatch(
            f"configuration {config['config_id']} has no complete trial with seed {wanted}; "
            f"its seeds: {', '.join(map(str, seeds))}"
        )
    trial_id = config["trial_ids"][seeds.index(wanted)]
    mix = analysis.mix
    return mix[mix["trial_id"].astype(str) == str(trial_id)].iloc[0]


DATA_RECORD = "data.json"  # written by the search for a prepared dataset (docs/data.md)


def provenance(analysis: Analysis, config: pd.Series, trial: pd.Series, how: str) -> list[str]:
    """Comment lines for an exported config: what was chosen, on what evidence, which seed."""
    exp = analysis.experiment
    n, seeds = int(config["n"]), ", ".join(str(s) for s in config["seeds"])
    extras = [m for m in ("test_accuracy",) if f"{m}_mean" in config and m not in exp.metrics]
    evidence = "mean ± sample std over seeds" if n > 1 else "one run"
    lines = [
        f"Exported by `tune-app export` from experiment {exp.path.resolve()}",
        f"configuration {config['config_id']} ({config['pipeline']}), --select {how}, from the "
        f"MixTraining front of {len(analysis.front_configs)} point(s) over "
        f"{BASIS_TEXT[analysis.basis]}",
        f"{n} seed(s) ({seeds}): {config_scores(config, exp.metrics)} ({evidence}; the "
        "space's objectives)",
    ]
    if extras:
        lines.append(f"{config_scores(config, extras)}: shown, never used to choose")
    lines.append(
        f"settings of seed {trial['seed']} (trial {trial['trial_id']}); `--seed S` writes "
        "another seed's, which differ only in `seed`"
    )
    if n == 1:
        lines.append(f"WARNING: a single run: {SINGLE_RUN_WARNING}")
    data = exp.path / DATA_RECORD  # a folder's prepared data: what the labels mean
    if data.is_file():
        classes = json.loads(data.read_text()).get("classes") or []
        lines.append(f"classes (label 0..{len(classes) - 1}): {', '.join(classes)}")
    lines.append("num_threads is left out: the search slot's thread count; 0 = use all CPUs.")
    if exp.source == FROM_RAY:  # Ray's files hold only the suggestion, not the fixed settings
        lines.append("settings rebuilt from space.yaml + the suggestion; others are defaults")
    return lines
