"""What an experiment found: the MixTraining front, baselines, dominance, hypervolume, knee.

Only complete trials (every planned epoch done, no error) count; the rest are listed with the
reason they were left out. Baselines are never on the front: they are what it is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.configs import BY_RUN, config_ids
from analysis.hypervolume import hypervolume, reference_point
from analysis.load import Experiment
from analysis.pareto import dominates, to_minimize
from analysis.verdict import Verdict, build_verdict

MIX = "mixtraining"
PIPELINE_NAMES = {MIX: "MixTraining", "ssl_sl": "SSL+SL", "sl": "SL"}


@dataclass(frozen=True)
class Analysis:
    """The results of `analyze`; every table holds trials.parquet columns plus derived ones.

    The answer (front, knee, export) is chosen among configurations, not trials: see
    `front_configs` and `basis`. `mix` has one row per complete MixTraining trial with
    `on_front` / `knee` (the trial belongs to a front / the knee configuration),
    `dominates_<pipeline>` and `<metric>_vs_<pipeline>` (trial minus baseline mean) columns.
    `verdict` holds the configuration-level results (seed-confirmed claims); see
    `analysis.verdict`.
    """

    experiment: Experiment
    done: pd.DataFrame
    mix: pd.DataFrame
    left_out: pd.DataFrame
    baselines: dict[str, dict[str, dict[str, float | int | None]]]
    reference: np.ndarray | None
    hypervolume: dict[str, float]
    verdict: Verdict | None = None

    @property
    def basis(self) -> str:
        """What the front and knee were chosen among (`analysis.configs.BY_*`)."""
        return BY_RUN if self.verdict is None else self.verdict.basis

    @property
    def front_configs(self) -> pd.DataFrame:
        """The MixTraining configurations on the front (means over seeds), fastest first."""
        if self.verdict is None:
            return pd.DataFrame()
        configs, exp = self.verdict.configs, self.experiment
        front = configs[configs["on_front"]]
        means = front[[f"{m}_mean" for m in exp.metrics]].to_numpy(dtype=float)
        # The order of the trial table (mark_mix): the last objective, then the first.
        return front.iloc[np.lexsort(to_minimize(means, exp.goals).T)] if len(front) else front

    @property
    def knee_config(self) -> pd.Series | None:
        """The knee configuration (`analysis.hypervolume.KNEE_RULE` over `front_configs`)."""
        if self.verdict is None:
            return None
        rows = self.verdict.configs[self.verdict.configs["knee"]]
        return rows.iloc[0] if len(rows) else None

    @property
    def front(self) -> pd.DataFrame:
        """The complete trials of the front configurations (every seed of each)."""
        return self.mix[self.mix["on_front"]]


REPEATED_SEED = "repeated seed"  # a second run of a seed its configuration already ran


def left_out_reason(table: pd.DataFrame, metrics: list[str]) -> pd.Series:
    """Per trial: None if it counts, else why not (errored, unfinished, missing metrics)."""
    reason = pd.Series([None] * len(table), index=table.index, dtype=object)
    errored = (table["status"] == "ERROR") | table["error"].notna()
    complete = table["complete"].fillna(False).astype(bool)
    reason[~complete & ~errored] = "unfinished"
    reason[errored] = "errored"
    no_metrics = complete & ~errored & table[metrics].isna().any(axis=1)
    reason[no_metrics] = "missing metrics"
    return reason


def without_mix_epoch(table: pd.DataFrame, space: dict) -> pd.Series:
    """Per row: True for a MixTraining trial whose plan has no MIX epoch: it trained as SSL+SL
    does.

    Read off the trial's own plan, not recomputed (its MIX length is trainers.plan's to say):
    each MIX epoch replaces one SSL and one SL epoch, so a plan without one has
    `epochs_planned == epochs_ssl + epochs_sl`.
    """
    trainer = space.get("trainer") or {}

    def column(name: str) -> pd.Series:
        if name in table:
            return pd.to_numeric(table[name], errors="coerce").astype(float)
        return pd.Series(float(trainer.get(name, np.nan)), index=table.index)

    separate = column("epochs_ssl") + column("epochs_sl")
    return (table["pipeline"] == MIX) & (column("epochs_planned") == separate)


def baseline_stats(done: pd.DataFrame, metrics: list[str]) -> dict[str, dict[str, dict]]:
    """Per baseline pipeline and metric: mean, sample std (None for one seed), n, min, max."""
    out: dict[str, dict[str, dict]] = {}
    for pipeline, rows in done[done["pipeline"] != MIX].groupby("pipeline", sort=True):
        out[str(pipeline)] = {}
        for m in metrics:
            v = rows[m].astype(float)
            std = float(v.std(ddof=1)) if len(v) > 1 else None
            out[str(pipeline)][m] = {
                "mean": float(v.mean()),
                "std": std,
                "n": int(len(v)),
                "min": float(v.min()),
                "max": float(v.max()),
            }
    return out


def mark_mix(mix: pd.DataFrame, exp: Experiment, baselines: dict[str, dict]) -> pd.DataFrame:
    """Add dominance and margin columns to the complete MixTraining trials.

    Rows come back sorted by the last objective, then the first (lower-is-better): in the
    pinned order that reads fastest first. (Front and knee are chosen over configurations:
    `analyze_experiment` marks the trials of the chosen ones.)
    """
    costs = to_minimize(mix[exp.metrics].to_numpy(dtype=float), exp.goals)
    order = np.lexsort(costs.T) if len(mix) else np.zeros(0, dtype=int)
    mix, costs = mix.iloc[order].copy(), costs[order]
    for pipeline, stats in baselines.items():
        mean = np.array([stats[m]["mean"] for m in exp.metrics])
        mean_cost = to_minimize(mean, exp.goals)[0]
        mix[f"dominates_{pipeline}"] = [dominates(c, mean_cost) for c in costs]
        for m, value in zip(exp.metrics, mean, strict=True):
            mix[f"{m}_vs_{pipeline}"] = mix[m].astype(float) - value
    return mix


def hypervolumes(
    done: pd.DataFrame, mix: pd.DataFrame, exp: Experiment, baselines: dict[str, dict]
) -> tuple[np.ndarray | None, dict[str, float]]:
    """Reference point (natural units) and hypervolumes: MixTraining front, baseline means.

    `*_fraction` values divide by the box between the ideal point (best value of each
    objective over all complete trials) and the reference point, so they lie in [0, 1].
    """
    if done.empty:
        return None, {}
    all_costs = to_minimize(done[exp.metrics].to_numpy(dtype=float), exp.goals)
    ref = reference_point(all_costs)
    box = float(np.prod(ref - all_costs.min(axis=0)))
    sets = {MIX: to_minimize(mix[exp.metrics].to_numpy(dtype=float), exp.goals)}
    means = {p: [s[m]["mean"] for m in exp.metrics] for p, s in baselines.items()}
    if means:
        sets["baselines"] = to_minimize(np.array(list(means.values())), exp.goals)
    sets.update({p: to_minimize(np.array(v), exp.goals) for p, v in means.items()})
    out: dict[str, float] = {}
    for name, costs in sets.items():
        out[name] = hypervolume(costs, ref)
        out[f"{name}_fraction"] = out[name] / box if box > 0 else 0.0
    natural = to_minimize(ref, exp.goals)[0]  # the sign flip is its own inverse
    return natural, out


# Summarised per configuration beside the objectives: shown with a choice, filters fall back.
EXTRAS = ("val_accuracy", "test_accuracy", "train_latency_s", "calibrated_latency_s")


def analyze_experiment(exp: Experiment, include_unconfirmed: bool = False) -> Analysis:
    """Everything `tune-app analyze` reports, computed from one loaded experiment.

    Args:
        exp: the loaded experiment.
        include_unconfirmed: let single-seed configurations onto the front even when
            confirmed ones exist (`tune-app export --include-unconfirmed`).
    """
    table = exp.table.copy()
    table["reason"] = left_out_reason(table, exp.metrics)
    table["config_id"] = config_ids(table, exp.space)
    # A configuration the sampler suggested again runs the same seed again: the same draw of
    # seed noise, not a second one. Counting it would call the configuration "confirmed" on
    # one seed (and give it a variance of zero); the first complete run of each seed counts.
    ok = table["reason"].isna()
    repeat = ok & table[ok].duplicated(["config_id", "seed"], keep="first").reindex(
        table.index, fill_value=False
    )
    table.loc[repeat, "reason"] = REPEATED_SEED
    done = table[table["reason"].isna()].drop(columns="reason")
    left_out = table[table["reason"].notna()]
    baselines = baseline_stats(done, exp.metrics)
    mix = mark_mix(done[done["pipeline"] == MIX], exp, baselines)
    mix["no_mix_epoch"] = without_mix_epoch(mix, exp.space)
    reference, volumes = hypervolumes(done, mix, exp, baselines)
    verdict = build_verdict(
        done,
        exp.metrics,
        exp.goals,
        exp.knobs,
        reference,
        include_unconfirmed=include_unconfirmed,
        extras=EXTRAS,
    )
    # One answer everywhere: a trial is on the front when its configuration is.
    configs = verdict.configs
    mix["on_front"] = mix["config_id"].isin(set(configs.loc[configs["on_front"], "config_id"]))
    mix["knee"] = mix["config_id"].isin(set(configs.loc[configs["knee"], "config_id"]))
    return Analysis(exp, done, mix, left_out, baselines, reference, volumes, verdict)


def left_out_counts(analysis: Analysis) -> dict[str, int]:
    """How many trials were left out, by reason (errored, unfinished, missing metrics)."""
    return {str(k): int(v) for k, v in analysis.left_out["reason"].value_counts().items()}


def beats(analysis: Analysis, pipeline: str) -> pd.DataFrame:
    """Complete MixTraining trials that dominate `pipeline`'s mean point, best first."""
    column = f"dominates_{pipeline}"
    if column not in analysis.mix:
        return analysis.mix.iloc[0:0]
    return analysis.mix[analysis.mix[column]]


def within_noise(analysis: Analysis, row: pd.Series, pipeline: str) -> bool:
    """True when some margin over `pipeline`'s mean is no larger than its seed std."""
    for m in analysis.experiment.metrics:
        std = analysis.baselines[pipeline][m]["std"]
        if std is None or abs(row[f"{m}_vs_{pipeline}"]) <= std:
            return True
    return False


def better_everywhere(analysis: Analysis, row: pd.Series, pipeline: str) -> bool:
    """Strictly better than `pipeline`'s mean on every objective (dominance allows ties)."""
    exp = analysis.experiment
    deltas = np.array([row[f"{m}_vs_{pipeline}"] for m in exp.metrics], dtype=float)
    return bool(np.all(to_minimize(deltas, exp.goals) < 0))
