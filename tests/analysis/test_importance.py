"""Knob importance (Optuna's fANOVA and PED-ANOVA over an in-memory study) and the data of the
tuner plots: parallel coordinates, slices, hypervolume history."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from analysis import analyze_experiment, load_experiment
from analysis.hypervolume import hypervolume_2d
from analysis.importance import (
    MIN_TRIALS,
    PRIMARY,
    distributions,
    importance_json,
    importance_markdown,
    param_importance,
)
from analysis.pareto import to_minimize
from analysis.tuner_plots import FINISH_ORDER, TABLE_ORDER, tuner_json, tuner_plots
from analysis.tuner_render import history_figure
from tests.support import FINISHED, ROOT, ray_trial, trial, write_experiment

PARAMETERS = {
    "alpha": {"distribution": "uniform", "min": 0.05, "max": 0.95},
    "rho": {"distribution": "uniform", "min": 0.25, "max": 1.0},
    "lam": {"distribution": "uniform", "min": 0.3, "max": 1.0},
    "anneal": {"values": ["none", "linear", "cosine"]},
}
METRICS, GOALS = ["val_accuracy", "train_latency_s"], ["maximize", "minimize"]


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """alpha drives accuracy, rho drives latency, lam and anneal do nothing (plus small noise)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "alpha": rng.uniform(0.05, 0.95, n),
            "rho": rng.uniform(0.25, 1.0, n),
            "lam": rng.uniform(0.3, 1.0, n),
            "anneal": rng.choice(["none", "linear", "cosine"], n),
        }
    )
    df["val_accuracy"] = 0.6 + 0.1 * df["alpha"] + rng.normal(0, 0.002, n)
    df["train_latency_s"] = 40 - 12 * df["rho"] + rng.normal(0, 0.2, n)
    return df


def test_distributions_follow_the_space_and_leave_constants_out() -> None:
    dists = distributions(
        {
            **PARAMETERS,
            "epochs": {"distribution": "int_uniform", "min": 1, "max": 4},
            "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
            "q": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
            "fixed": {"value": 3},
        }
    )
    assert list(dists) == ["alpha", "rho", "lam", "anneal", "epochs", "lr", "q"]
    assert dists["alpha"] == optuna.distributions.FloatDistribution(0.05, 0.95)
    assert dists["anneal"] == optuna.distributions.CategoricalDistribution(
        ["none", "linear", "cosine"]
    )
    assert dists["epochs"] == optuna.distributions.IntDistribution(1, 4)
    assert dists["lr"].log and dists["q"].step == 0.25


def test_driving_knobs_rank_first_and_inert_knobs_come_out_near_zero() -> None:
    imp = param_importance(synthetic(30), PARAMETERS, METRICS, GOALS)
    assert imp.note is None and imp.n_trials == 30
    for evaluator in ("fanova", "ped_anova"):
        acc, lat = (imp.values[evaluator][m] for m in METRICS)
        assert next(iter(acc)) == "alpha" and next(iter(lat)) == "rho"  # ranked, best first
        for shares in (acc, lat):
            assert sum(shares.values()) == pytest.approx(1.0)
    fanova = imp.values["fanova"]
    for metric in METRICS:
        assert fanova[metric]["lam"] < 0.05 and fanova[metric]["anneal"] < 0.05
    assert imp.primary == imp.values[PRIMARY]
    summary = importance_json(imp)
    assert summary["importance"] == fanova  # {objective: {param: value}}
    assert summary["importance_detail"]["evaluators"]["ped_anova"] == imp.values["ped_anova"]
    json.dumps(summary)  # plain JSON


def test_the_same_trials_give_the_same_numbers() -> None:
    df = synthetic(20, seed=3)
    first = param_importance(df, PARAMETERS, METRICS, GOALS)
    assert param_importance(df, PARAMETERS, METRICS, GOALS).values == first.values


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_trials_computes_nothing_and_says_so(n: int) -> None:
    imp = param_importance(synthetic(5).head(n), PARAMETERS, METRICS, GOALS)
    assert imp.values == {} and f"Only {n} complete" in imp.note
    assert importance_json(imp)["importance"] == {}


def test_a_few_trials_are_computed_with_a_plain_warning() -> None:
    imp = param_importance(synthetic(MIN_TRIALS - 1), PARAMETERS, METRICS, GOALS)
    assert set(imp.values) == {"fanova", "ped_anova"}
    assert f"fewer than {MIN_TRIALS}" in imp.note and "hint" in imp.note
    assert param_importance(synthetic(MIN_TRIALS), PARAMETERS, METRICS, GOALS).note is None


def test_no_varying_knob_and_values_outside_the_space() -> None:
    constant = {"alpha": {"value": 0.5}, "anneal": {"values": ["none"]}}
    imp = param_importance(synthetic(12), constant, METRICS, GOALS)
    assert imp.values == {} and "No searched knob varies" in imp.note
    narrowed = {**PARAMETERS, "alpha": {"distribution": "uniform", "min": 0.5, "max": 0.6}}
    imp = param_importance(synthetic(12), narrowed, METRICS, GOALS)
    assert imp.values == {} and imp.note.startswith("Importance skipped")


def test_numeric_categorical_values_from_parquet_match_their_choices(tmp_path) -> None:
    df = synthetic(12)
    df["depth"] = np.tile([2, 4, 8], 4)
    df.to_parquet(tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    space = {**PARAMETERS, "depth": {"values": [2, 4, 8]}}
    imp = param_importance(back, space, METRICS, GOALS)
    assert set(imp.values["fanova"]["val_accuracy"]) == {"alpha", "rho", "lam", "anneal", "depth"}


# ---------------------------------------------------------------- tuner plot data


def test_parallel_and_slice_data_of_a_finished_experiment(tmp_path) -> None:
    a = analyze_experiment(load_experiment(write_experiment(tmp_path / "f", FINISHED)))
    plots = tuner_plots(a)
    axes = plots.parallel.axes
    assert [ax.name for ax in axes] == ["alpha", "rho", "lam", "anneal", *METRICS]
    ids = plots.parallel.ids
    front = dict(zip(ids, plots.parallel.on_front, strict=True))
    assert {t for t, on in front.items() if on} == {"m1", "m2", "m3", "m5", "m6"}
    anneal = axes[3]
    assert anneal.ticks == ["none", "linear", "cosine"]
    by_id = dict(zip(ids, anneal.values, strict=True))
    assert (by_id["m1"], by_id["m2"], by_id["m3"]) == (1.0, 2.0, 0.0)
    assert dict(zip(ids, axes[4].values, strict=True))["m3"] == pytest.approx(0.90)
    assert [(s.knob, s.metric) for s in plots.slices] == [
        (k, m) for m in METRICS for k in ["alpha", "rho", "lam", "anneal"]
    ]
    assert plots.slices[3].choices == ["none", "linear", "cosine"]  # anneal, in space order
    assert plots.slices[0].choices is None
    alpha_acc = plots.slices[0]
    assert dict(zip(alpha_acc.ids, zip(alpha_acc.x, alpha_acc.y, strict=True), strict=True))[
        "m4"
    ] == pytest.approx((0.8, 0.78))


def test_hypervolume_history_ends_at_the_front_hypervolume(tmp_path) -> None:
    a = analyze_experiment(load_experiment(write_experiment(tmp_path / "f", FINISHED)))
    h = tuner_plots(a).history
    assert h.order == TABLE_ORDER  # trials.parquet only: no result.json timestamps
    assert h.finished == list(range(1, 7)) and sorted(h.ids) == sorted(a.mix["trial_id"])
    assert all(b >= x for x, b in zip(h.hypervolume, h.hypervolume[1:], strict=False))
    assert h.hypervolume[-1] == pytest.approx(a.hypervolume["mixtraining"])


def test_hypervolume_history_follows_finish_time(tmp_path) -> None:
    """Three Ray trial folders finishing in the order b, c, a (their last timestamps)."""
    from tests.support import SPACE

    exp = write_experiment(tmp_path / "r", [], space=SPACE)
    for tid, acc, lat, stamp, alpha in [
        ("a", 0.9, 30.0, 300, 0.3),
        ("b", 0.7, 10.0, 100, 0.5),
        ("c", 0.8, 20.0, 200, 0.7),
    ]:  # three configurations (a repeat of one configuration's seed would be left out)
        knobs = {"alpha": alpha, "rho": 0.5, "lam": 0.7, "anneal": "none"}
        epochs = [{"epoch": e, "val_accuracy": acc, "train_latency_s": lat * e / 4,
                   "timestamp": stamp - 4 + e, "trial_id": tid} for e in range(1, 5)]  # fmt: skip
        ray_trial(exp, tid, knobs, epochs, planned=4)
    a = analyze_experiment(load_experiment(exp))
    h = tuner_plots(a).history
    assert h.order == FINISH_ORDER and h.ids == ["b", "c", "a"]
    assert h.hypervolume[0] < h.hypervolume[1] < h.hypervolume[2]
    assert h.hypervolume[-1] == pytest.approx(a.hypervolume["mixtraining"])


def test_hypervolume_history_of_a_finished_search_with_a_confirmation_phase(tmp_path) -> None:
    """A search's folder as Ray leaves it: trials.parquet, search trials' result.json at the
    top, confirmation trials' under confirm/. Finishing order is m2, m1, m3 (search), then the
    confirmation seeds m1s1 and m3s1 (m3s1's lucky seed extends the front); m4 finished last
    among the search trials in the table but first in time."""
    rows, stamps = [], {"m4": 50, "m2": 100, "m1": 200, "m3": 300, "m1s1": 400, "m3s1": 500}
    for tid, acc, lat, seed, alpha in [
        ("m1", 0.80, 10.0, 0, 0.2),
        ("m2", 0.70, 8.0, 0, 0.4),
        ("m3", 0.85, 20.0, 0, 0.6),
        ("m4", 0.60, 30.0, 0, 0.8),  # dominated: adds nothing when it finishes
        ("m1s1", 0.78, 10.0, 1, 0.2),
        ("m3s1", 0.95, 20.0, 1, 0.6),
    ]:
        row = trial(tid, acc, lat, seed=seed, alpha=alpha)
        row["role"] = "confirm" if seed else "search"
        rows.append(row)
    rows += [trial("b0", 0.65, 9.0, "sl", 0), trial("b1", 0.66, 9.0, "sl", 1)]
    exp = write_experiment(tmp_path / "e", rows)
    for row in rows:
        if row["pipeline"] == "mixtraining":
            root = exp / "confirm" if row["role"] == "confirm" else exp
            epochs = [{"timestamp": stamps[row["trial_id"]] - 4 + e} for e in range(1, 5)]
            ray_trial(root, row["trial_id"], {"alpha": row["alpha"]}, epochs, planned=4)
    with (exp / "confirm" / "m3s1" / "result.json").open("a") as torn:  # a killed writer's line
        torn.write('{"epoch": 5, "times')
    a = analyze_experiment(load_experiment(exp))
    h = tuner_plots(a).history
    assert h.order == FINISH_ORDER
    assert h.ids == ["m4", "m2", "m1", "m3", "m1s1", "m3s1"]
    assert h.finished == [1, 2, 3, 4, 5, 6] and h.confirm_from == 5
    assert all(b >= x for x, b in zip(h.hypervolume, h.hypervolume[1:], strict=False))
    ref = to_minimize(np.asarray(a.reference, dtype=float), ["maximize", "minimize"])[0]
    values = {r["trial_id"]: (-r["val_accuracy"], r["train_latency_s"]) for r in rows}
    expected = [
        hypervolume_2d(np.array([values[t] for t in h.ids[: k + 1]]), ref) for k in range(6)
    ]
    assert h.hypervolume == pytest.approx(expected)  # one reference point throughout
    assert h.hypervolume[1] > h.hypervolume[0] and h.hypervolume[5] > h.hypervolume[4]
    assert h.hypervolume[4] == h.hypervolume[3]  # m1s1 is dominated by m1: no growth
    summary = tuner_json(tuner_plots(a))
    assert summary["hypervolume_history"] == [
        {"trials": n, "hypervolume": pytest.approx(v)}
        for n, v in zip(h.finished, expected, strict=True)
    ]
    assert summary["hypervolume_history_order"]["confirmation_from"] == 5
    figure = history_figure(h)
    assert figure.layout.xaxis.dtick == 1  # whole trials: no tick at 2.5


def test_importing_analysis_loads_no_optuna_plotly_or_matplotlib() -> None:
    """Importing `analysis` must stay cheap: the heavy libraries load only to compute or draw."""
    import subprocess
    import sys

    code = (
        "import sys, analysis, analysis.write, analysis.tuner_plots, analysis.tuner_png; "
        "print(sorted(m for m in ('optuna', 'plotly', 'matplotlib', 'ray', 'torch') "
        "if m in sys.modules))"
    )
    root = ROOT
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("trainer", "parameters", "inert"),
    [
        ({"ssl_source": "same"}, PARAMETERS, ["lam"]),
        ({}, PARAMETERS, ["lam"]),  # `same` is TrialConfig's default
        ({"ssl_source": "unlabeled"}, PARAMETERS, []),
        ({}, {**PARAMETERS, "ssl_source": {"values": ["same", "unlabeled"]}}, []),  # searched
    ],
)
def test_a_knob_the_fixed_settings_leave_unread_is_named_inert(trainer, parameters, inert):
    mix = synthetic(30)
    mix["ssl_source"] = ["same", "unlabeled"] * 15  # read only where the space searches it
    imp = param_importance(mix, parameters, METRICS, GOALS, trainer)
    assert list(imp.inert) == inert
    assert importance_json(imp)["importance_detail"]["inert"] == imp.inert
    text = "\n".join(importance_markdown(imp))
    assert ("**`lam` cannot act in this space**" in text) == bool(inert)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_lam_is_really_unread_under_ssl_source_same() -> None:
    """The rule above, checked on the trainer: two runs differing only in `lam` end identical
    with `ssl_source: same`, and differ when SSL images are mixed in."""
    from tests.support import TINY_RUN
    from trainers import TrialConfig, run

    def final(source: str, lam: float) -> dict:
        config = TrialConfig.from_dict({**TINY_RUN, "ssl_source": source, "lam": lam, "seed": 3})
        return run(config, lambda metrics, state: None)

    same = [final("same", lam) for lam in (0.3, 0.9)]
    assert same[0]["val_accuracy"] == same[1]["val_accuracy"]
    assert same[0]["loss_sl"] == same[1]["loss_sl"]
    mixed = [final("unlabeled", lam) for lam in (0.3, 0.9)]
    assert mixed[0]["loss_sl"] != mixed[1]["loss_sl"]


def test_an_objective_every_trial_shares_has_no_driver_and_no_crash() -> None:
    """Small searches can give every trial the same calibrated cost (same step counts);
    fANOVA raises on zero variance, which crashed the importance of a 30-trial search's
    subsets."""
    mix = synthetic(12)
    mix["train_latency_s"] = 42.83
    imp = param_importance(mix, PARAMETERS, METRICS, GOALS)
    for evaluator in ("fanova", "ped_anova"):
        assert set(imp.values[evaluator]["train_latency_s"].values()) == {0.0}
        assert sum(imp.values[evaluator]["val_accuracy"].values()) == pytest.approx(1.0)
