"""Which searched knob drives which objective: Optuna's own importance evaluators.

The complete MixTraining trials become an in-memory Optuna study (the space's distributions,
the trials' knobs and objective values), and each objective is scored on its own with
fANOVA (variance of a random-forest fit explained by each knob) and PED-ANOVA (how far the
knob's distribution among the best trials departs from its distribution among all trials).
Both are Optuna's implementations; nothing here computes a statistic itself. Values are
Optuna's normalised shares: per evaluator and objective they sum to 1, and a knob that does
not move the objective comes out near 0.

optuna is imported inside the functions, so importing `analysis` stays cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

EVALUATORS = ("fanova", "ped_anova")
PRIMARY = "fanova"  # what summary.json's `importance` holds; PED-ANOVA goes beside it
# Below this many complete MixTraining trials the rankings are mostly noise: how the rankings
# of random subsets of a real search settle as trials are added is measured by
# benchmarks/importance_stability.py.
MIN_TRIALS = 20
FANOVA_SEED = 0  # the random forest is seeded so the same experiment gives the same numbers
# PED-ANOVA scores the top quantile of trials; its docs advise at least 5 trials in it.
PED_ANOVA_TOP_TRIALS = 5
# Knobs the space's fixed settings leave unread: knob -> (setting, its default in
# trainers.config.TrialConfig, values that make the knob inert, why). `lam` weighs SSL images
# mixed into MIX batches, and `ssl_source: same` mixes none (the only place trainers/ reads
# `lam` is the MIX batch draw, which skips it then).
INERT_WHEN = {
    "lam": (
        "ssl_source",
        "same",
        {"same"},
        "`ssl_source: same` mixes no SSL image into MIX batches, so `lam` is never read",
    ),
}


@dataclass(frozen=True)
class Importance:
    """Importances of the searched knobs, per evaluator and objective.

    `values[evaluator][objective][param]` is a share in [0, 1] (sums to 1 per objective), or
    the dict is empty when nothing could be computed; `note` then, or when there are fewer
    than `MIN_TRIALS` trials, says why in one plain sentence.
    """

    params: list[str]
    objectives: list[str]
    n_trials: int
    values: dict[str, dict[str, dict[str, float]]]
    note: str | None
    inert: dict[str, str] = field(default_factory=dict)  # knob -> why it cannot act here

    @property
    def primary(self) -> dict[str, dict[str, float]]:
        """summary.json's `importance`: `{objective: {param: value}}` by `PRIMARY`."""
        return self.values.get(PRIMARY, {})


def distributions(parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna distributions of the searched parameters of a space (constants are left out).

    Args:
        parameters: the space's `parameters` block as written to space.yaml.
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, spec in parameters.items():
        kind = spec.get("distribution")
        if "values" in spec:
            out[name] = CategoricalDistribution(list(spec["values"]))
        elif kind == "uniform":
            out[name] = FloatDistribution(spec["min"], spec["max"])
        elif kind == "log_uniform_values":
            out[name] = FloatDistribution(spec["min"], spec["max"], log=True)
        elif kind == "int_uniform":
            out[name] = IntDistribution(int(spec["min"]), int(spec["max"]))
        elif kind == "q_uniform":
            out[name] = FloatDistribution(spec["min"], spec["max"], step=spec["q"])
    return out


def searched(dists: dict[str, Any]) -> dict[str, Any]:
    """The distributions that can vary (a one-choice categorical is a constant)."""
    return {name: d for name, d in dists.items() if not d.single()}


def _param_value(dist: Any, value: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        # parquet may hand back numpy scalars; match the choice by its plain value
        plain = value.item() if hasattr(value, "item") else value
        return next((c for c in dist.choices if c == plain or str(c) == str(plain)), plain)
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def build_study(
    trials: pd.DataFrame, dists: dict[str, Any], metrics: list[str], goals: list[str]
) -> Any:
    """An in-memory multi-objective study holding one COMPLETE trial per row.

    Raises:
        ValueError: a knob value lies outside the space's distribution (Optuna's message).
    """
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per call
    try:
        directions = [optuna.study.StudyDirection[g.upper()] for g in goals]  # MAXIMIZE/MINIMIZE
        study = optuna.create_study(directions=directions, storage=None)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in trials.iterrows():
        params = {name: _param_value(d, row[name]) for name, d in dists.items()}
        values = [float(row[m]) for m in metrics]
        trial = optuna.trial.create_trial(params=params, distributions=dists, values=values)
        study.add_trial(trial)
    return study


def _evaluator(name: str, n_trials: int) -> Any:
    import optuna

    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=FANOVA_SEED)
    # The default top 10% is 1-2 trials in a search of a dozen; keep 5 in it when possible.
    quantile = min(0.5, max(0.1, PED_ANOVA_TOP_TRIALS / max(n_trials, 1)))
    return optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)


def _shares(raw: dict[str, float]) -> dict[str, float]:
    """Normalise to shares, best first; all zero stays all zero (Optuna would split evenly)."""
    total = sum(raw.values())
    shares = {k: (v / total if total > 0 else 0.0) for k, v in raw.items()}
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def evaluate(study: Any, evaluator: str, index: int, goal: str) -> dict[str, float]:
    """One evaluator's shares for objective `index` of `study` (lower-is-better target)."""
    import optuna

    sign = -1.0 if goal == "maximize" else 1.0  # PED-ANOVA assumes lower is better
    values = [t.values[index] for t in study.trials]
    if max(values) == min(values):
        # A constant objective (e.g. every trial took the same steps, so the same calibrated
        # cost): no knob moves it, and fANOVA refuses to fit zero variance.
        return dict.fromkeys(study.trials[0].distributions, 0.0)
    with warnings.catch_warnings():
        # Both warnings restate what this module documents: the target is lower-is-better,
        # and the raw (unnormalised) values are taken on purpose, to keep all-zero at zero.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*computes the importances of params.*")
        raw = optuna.importance.get_param_importances(
            study,
            evaluator=_evaluator(evaluator, len(study.trials)),
            target=lambda t: sign * t.values[index],
            normalize=False,
        )
    return _shares({k: float(v) for k, v in raw.items()})


def too_few_note(n_trials: int, n_params: int) -> str | None:
    if n_params == 0:
        return "No searched knob varies in this space, so there is no importance to compute."
    if n_trials < 2:
        return (
            f"Only {n_trials} complete MixTraining trial(s): importance needs at least 2, "
            "so none is computed."
        )
    if n_trials < MIN_TRIALS:
        return (
            f"Only {n_trials} complete MixTraining trials: with fewer than {MIN_TRIALS} the "
            "ranking changes from one subset of trials to the next, and a knob that does "
            "nothing can still take a sizeable share, so read these numbers as a hint, "
            "not a finding."
        )
    return None


def inert_knobs(
    params: list[str], parameters: dict[str, dict[str, Any]], trainer: dict[str, Any]
) -> dict[str, str]:
    """Searched knobs that the space's fixed settings leave unread, with the reason.

    A knob is inert when the setting it depends on is fixed (not searched) at a value that
    never reads it; its measured share is then what noise and the sampler's choices give a
    knob that does nothing, the bar any other knob's share must clear.
    """
    out = {}
    for knob in params:
        rule = INERT_WHEN.get(knob)
        if rule is None or rule[0] in parameters:
            continue
        setting, default, values, why = rule
        if trainer.get(setting, default) in values:
            out[knob] = why
    return out


def param_importance(
    mix: pd.DataFrame,
    parameters: dict[str, dict[str, Any]],
    metrics: list[str],
    goals: list[str],
    trainer: dict[str, Any] | None = None,
) -> Importance:
    """Importance of each searched knob for each objective, by fANOVA and PED-ANOVA.

    Args:
        mix: the complete MixTraining trials (knob columns and objective columns).
        parameters: the space's `parameters` block.
        metrics: the objectives' metric names; goals: maximize | minimize for each.
        trainer: the space's fixed `trainer` settings, to name the knobs they leave inert.
    """
    dists = searched(distributions(parameters))
    note = too_few_note(len(mix), len(dists))
    inert = inert_knobs(list(dists), parameters, trainer or {})
    empty = Importance(list(dists), list(metrics), len(mix), {}, note, inert)
    if len(mix) < 2 or not dists:
        return empty
    try:
        study = build_study(mix, dists, metrics, goals)
    except ValueError as e:  # e.g. space.yaml edited after the search: say so, keep the rest
        skipped = f"Importance skipped: {e}"
        return Importance(list(dists), list(metrics), len(mix), {}, skipped, inert)
    pairs = list(enumerate(zip(metrics, goals, strict=True)))
    values = {name: {m: evaluate(study, name, i, g) for i, (m, g) in pairs} for name in EVALUATORS}
    return Importance(list(dists), list(metrics), len(mix), values, note, inert)


def importance_json(imp: Importance) -> dict[str, Any]:
    """summary.json's `importance` ({objective: {param: value}}, by PRIMARY) and its detail."""
    detail = {
        "primary": PRIMARY,
        "evaluators": imp.values,
        "params": imp.params,
        "trials": imp.n_trials,
        "min_trials": MIN_TRIALS,
        "note": imp.note,
        "inert": imp.inert,
    }
    return {"importance": imp.primary, "importance_detail": detail}


def importance_markdown(imp: Importance) -> list[str]:
    """report.md's section: one table per objective, knobs ranked by the primary evaluator."""
    from analysis.fmt import md_table

    lines = ["## What drives each objective (knob importance)", ""]
    lines += [
        f"Over the {imp.n_trials} complete MixTraining trials, per objective, with Optuna's "
        "evaluators: fANOVA (share of the objective's variance a random-forest fit attributes "
        "to the knob) and PED-ANOVA (how much the knob's values among the best trials differ "
        "from its values among all of them). Each column sums to 1; with enough trials a knob "
        "that does not move the objective comes out near 0. The trials are those the sampler "
        "chose: TPE samples near earlier good trials, so a knob can look important because it "
        "was sampled together with one that is.",
        "",
    ]
    if imp.note:
        lines += [f"**{imp.note}**", ""]
    if not imp.values:
        return lines
    names = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}
    for metric in imp.objectives:
        ranked = list(imp.values[PRIMARY][metric])
        rows = [
            [i, f"`{p}`", *(f"{imp.values[e][metric][p]:.3f}" for e in imp.values)]
            for i, p in enumerate(ranked, start=1)
        ]
        headers = ["rank", "knob", *(names.get(e, e) for e in imp.values)]
        lines += [f"### `{metric}`", "", md_table(headers, rows), ""]
    for knob, why in imp.inert.items():
        shares = ", ".join(f"{imp.values[PRIMARY][m][knob]:.3f} for `{m}`" for m in imp.objectives)
        lines += [
            f"**`{knob}` cannot act in this space**: {why}. Its fANOVA share ({shares}) is what "
            "noise and the sampler's choices give a knob that does nothing: read another "
            "knob's share as a finding only when it stands well above that.",
            "",
        ]
    return lines
