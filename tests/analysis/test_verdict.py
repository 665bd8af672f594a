"""Verdicts over configurations: config ids, grouping, Holm, Welch, confirmed dominance,
hypervolume intervals; each against a closed form or brute force, plus edge cases."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import analyze_experiment, load_experiment
from analysis.configs import config_id, config_ids, group_configs, mark_config_front
from analysis.hypervolume import knee_index
from analysis.plots import plot_data
from analysis.summary import left_out_counts
from analysis.verdict import build_verdict, holm, interval_ahead, welch_one_sided
from analysis.verdict_report import hypervolume_line
from tests.support import FINISHED, trial, write_experiment
from tune_app.cli import main

METRICS, GOALS = ["val_accuracy", "train_latency_s"], ["maximize", "minimize"]
FIXED = {"model": "test_vit", "dataset": "digits", "epochs_ssl": 2, "num_threads": 1}


# ---------------------------------------------------------------- config_id


def test_config_id_ignores_seed_threads_and_storage_type() -> None:
    a = config_id("mixtraining", {"alpha": 0.5, "rho": 3.0}, {**FIXED, "seed": 0})
    b = config_id("mixtraining", {"alpha": np.float64(0.5), "rho": 3}, {**FIXED, "seed": 7})
    assert a == b and len(a) == 12
    assert config_id("mixtraining", {"alpha": 0.5, "rho": 3}, {**FIXED, "num_threads": 2}) == a
    assert config_id("mixtraining", {"alpha": 0.51, "rho": 3}, FIXED) != a
    assert config_id("mixtraining", {"alpha": 0.5, "rho": 3}, {**FIXED, "epochs_ssl": 3}) != a
    # Baselines: the knobs mean nothing (null in trials.parquet), the pipeline tells them apart.
    assert config_id("sl", {"alpha": None}, FIXED) == config_id("sl", {"alpha": 0.3}, FIXED)
    assert config_id("sl", {}, FIXED) != config_id("ssl_sl", {}, FIXED)


def test_config_ids_prefer_the_tables_column() -> None:
    space = {"parameters": {"alpha": {}}, "trainer": FIXED}
    table = pd.DataFrame(
        {"pipeline": ["mixtraining"] * 3, "alpha": [0.5, 0.5, 0.6], "config_id": [None, "x", None]}
    )
    ids = config_ids(table, space).tolist()
    assert ids[1] == "x" and ids[0] == config_id("mixtraining", {"alpha": 0.5}, FIXED)
    assert ids[2] != ids[0]


# ---------------------------------------------------------------- grouping and front


def seeds_table(spec: dict[str, list[tuple[float, float]]], pipeline: dict | None = None):
    """One complete row per (config, seed): spec maps config_id -> [(acc, latency), ...]."""
    pipeline = pipeline or {}
    rows = [
        {
            "trial_id": f"{cid}_{s}",
            "config_id": cid,
            "pipeline": pipeline.get(cid, "mixtraining"),
            "seed": s,
            "alpha": 0.5,
            "val_accuracy": acc,
            "train_latency_s": lat,
        }
        for cid, values in spec.items()
        for s, (acc, lat) in enumerate(values)
    ]
    columns = ["trial_id", "config_id", "pipeline", "seed", "alpha", *METRICS]
    return pd.DataFrame(rows, columns=columns)


def test_group_configs_matches_numpy_and_marks_single_seeds() -> None:
    rng = np.random.default_rng(0)
    spec = {f"c{i}": [tuple(v) for v in rng.random((n, 2))] for i, n in enumerate([1, 2, 5])}
    configs = group_configs(seeds_table(spec), METRICS, ["alpha"]).set_index("config_id")
    for cid, values in spec.items():
        v = np.array(values)
        row = configs.loc[cid]
        assert row["n"] == len(v) and row["confirmed"] == (len(v) >= 2)
        assert row["val_accuracy_mean"] == pytest.approx(v[:, 0].mean())
        if len(v) > 1:
            assert row["train_latency_s_std"] == pytest.approx(v[:, 1].std(ddof=1))
        else:
            assert math.isnan(row["train_latency_s_std"])
        assert row["trial_ids"] == [f"{cid}_{s}" for s in range(len(v))]
    assert group_configs(seeds_table({}), METRICS, ["alpha"]).empty


def test_config_front_is_over_means_and_never_holds_baselines() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        spec = {f"c{i}": [tuple(v) for v in rng.integers(0, 4, (2, 2))] for i in range(7)}
        table = seeds_table(spec, {"c6": "ssl_sl"})
        configs = mark_config_front(group_configs(table, METRICS, []), METRICS, GOALS)
        means = configs[["val_accuracy_mean", "train_latency_s_mean"]].to_numpy() * [-1, 1]
        mix = (configs["pipeline"] == "mixtraining").to_numpy()
        for i in range(len(configs)):
            beaten = any(
                mix[j] and np.all(means[j] <= means[i]) and np.any(means[j] < means[i])
                for j in range(len(configs))
            )
            assert configs["on_front"].iloc[i] == (mix[i] and not beaten)
        assert configs["knee"].sum() == 1 and configs.loc[configs["knee"], "on_front"].all()


# ---------------------------------------------------------------- Holm and Welch


def brute_holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's procedure from its definition: step down while p_(k) <= alpha / (m - k)."""
    order, reject = np.argsort(p, kind="stable"), np.zeros(len(p), dtype=bool)
    for k, i in enumerate(order):
        if p[i] > alpha / (len(p) - k):
            break
        reject[i] = True
    return reject


def test_holm_matches_the_step_down_definition() -> None:
    rng = np.random.default_rng(2)
    for m in (1, 2, 5, 12):
        for _ in range(50):
            p = rng.random(m) ** 3  # many small p-values
            adjusted = holm(p)
            assert np.all(adjusted >= p) and np.all(adjusted <= 1)
            for alpha in (0.01, 0.05, 0.2):
                # Adjusted p <= alpha is the same decision as the step-down procedure.
                np.testing.assert_array_equal(adjusted <= alpha, brute_holm_rejects(p, alpha))
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.5]), [1.0, 1.0])  # ties; capped at 1
    assert holm([]).shape == (0,)


def test_welch_matches_the_closed_form() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 4), rng.normal(0.0, 2.0, 6)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    p, diff, low, high = welch_one_sided(a, b, "maximize")
    assert p == pytest.approx(stats.t.sf(t, df)) and diff == pytest.approx(a.mean() - b.mean())
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    assert (low, high) == pytest.approx((diff - half, diff + half))
    assert welch_one_sided(a, b, "minimize")[0] == pytest.approx(stats.t.cdf(t, df))


def test_welch_edge_cases() -> None:
    # Deterministic metric (no seed noise): the difference is exact.
    assert welch_one_sided([3.0, 3.0], [4.0, 4.0], "minimize") == (0.0, -1.0, -1.0, -1.0)
    assert welch_one_sided([3.0, 3.0], [3.0, 3.0], "minimize")[0] == 1.0
    with pytest.raises(ValueError, match="two values"):
        welch_one_sided([1.0], [1.0, 2.0], "maximize")


# ---------------------------------------------------------------- claims


BASE = {"base": "ssl_sl", "floor": "sl"}


def verdict_of(spec: dict, reference: np.ndarray | None = None, samples: int = 0):
    return build_verdict(
        seeds_table(spec, BASE), METRICS, GOALS, ["alpha"], reference, samples=samples
    )


def test_a_clear_winner_is_confirmed_and_a_noisy_one_is_not() -> None:
    spec = {
        "base": [(0.80, 20.0), (0.81, 20.5), (0.79, 19.5)],
        "floor": [(0.70, 10.0), (0.71, 10.0), (0.69, 10.0)],
        "win": [(0.90, 15.0), (0.91, 15.2), (0.89, 14.8)],  # far better on both
        "noisy": [(0.95, 15.0), (0.60, 15.0), (0.90, 15.0)],  # mean 0.817, huge spread
        "single": [(0.99, 1.0)],  # would win everything, but has one seed
        "worse": [(0.70, 25.0), (0.71, 25.0)],
    }
    v = verdict_of(spec)
    assert v.confirmed_dominance == {"ssl_sl": ["win"], "sl": []}
    assert v.unconfirmed_dominating == {"ssl_sl": ["single"], "sl": ["single"]}
    # Tests only where the means dominate (win, noisy vs ssl_sl), one per better objective.
    assert sorted(map(tuple, v.tests[["config_id", "metric"]].to_numpy())) == [
        ("noisy", "train_latency_s"),
        ("noisy", "val_accuracy"),
        ("win", "train_latency_s"),
        ("win", "val_accuracy"),
    ]
    # The family: every confirmed configuration against every baseline with 2+ seeds.
    assert len(v.claims) == 6 and v.claims["means_dominate"].sum() == 2
    claim_p = v.tests.groupby(["config_id", "baseline"])["p"].max()
    for _, c in v.claims.iterrows():
        assert c["p"] == claim_p.get((c["config_id"], c["baseline"]), 1.0)
    np.testing.assert_allclose(v.claims["p_holm"], holm(v.claims["p"]))
    noisy = v.tests.set_index(["config_id", "metric"]).loc[("noisy", "val_accuracy")]
    assert noisy["p_holm"] >= 0.05 and noisy["ci_low"] < 0 < noisy["ci_high"]


def test_holm_counts_every_claim_the_report_makes() -> None:
    """A p just under 0.05 passes alone; two such tests in one report must both fail."""
    base = [(0.80, 20.0), (0.82, 20.0), (0.78, 20.0)]
    # Accuracy 0.835 +- 0.02 vs 0.80 +- 0.02 with 3 seeds each, equal latency: p ~ 0.04.
    marginal = [(0.835, 20.0), (0.855, 20.0), (0.815, 20.0)]
    alone = verdict_of({"base": base, "m": marginal})
    p = alone.tests["p"].iloc[0]
    assert 0.025 < p < 0.05 and alone.confirmed_dominance["ssl_sl"] == ["m"]
    pair = verdict_of({"base": base, "m": marginal, "twin": marginal})
    assert len(pair.tests) == 2 and pair.tests["p_holm"].tolist() == pytest.approx([2 * p] * 2)
    assert pair.confirmed_dominance["ssl_sl"] == []
    # A far stronger claim beside it only takes the first Holm step: m passes again.
    strong = [(0.95, 19.0), (0.96, 19.0), (0.94, 19.0)]
    crowded = verdict_of({"base": base, "m": marginal, "s": strong})
    assert len(crowded.tests) == 3  # m: accuracy; s: accuracy and the exact latency
    assert crowded.confirmed_dominance["ssl_sl"] == ["m", "s"]
    # A confirmed configuration that does not dominate is still assessed (p = 1): it counts.
    worse = [(0.70, 25.0), (0.71, 25.0)]
    assessed = verdict_of({"base": base, "m": marginal, "w": worse})
    assert assessed.claims["p_holm"].tolist() == pytest.approx([2 * p, 1.0])
    assert assessed.confirmed_dominance["ssl_sl"] == []


def test_no_claims_without_seeds() -> None:
    one_seed_base = verdict_of({"base": [(0.5, 20.0)], "m": [(0.9, 1.0), (0.9, 1.0)]})
    assert one_seed_base.confirmed_dominance == {"ssl_sl": [], "sl": []}
    assert "one seed" in one_seed_base.untestable["ssl_sl"]
    assert "no complete trial" in one_seed_base.untestable["sl"]
    empty = verdict_of({})
    assert empty.confirmed_dominance == {"ssl_sl": [], "sl": []} and empty.tests.empty
    ties = verdict_of({"base": [(0.8, 20.0)] * 2, "m": [(0.8, 20.0)] * 3})
    assert ties.tests.empty  # equal means everywhere: nothing is better, nothing is tested


def test_hypervolume_interval_and_who_is_ahead() -> None:
    ref = np.array([0.0, 30.0])  # natural units: accuracy 0, latency 30 s
    spec = {
        "base": [(0.5, 20.0), (0.52, 20.0), (0.48, 20.0)],
        "a": [(0.9, 10.0), (0.9, 10.0)],  # no seed noise: a zero-width interval
    }
    hv = verdict_of(spec, ref, samples=200).hypervolume
    assert hv["mixtraining"]["low"] == hv["mixtraining"]["high"] == pytest.approx(0.9 * 20.0)
    assert hv["baselines"]["low"] <= 0.5 * 10.0 <= hv["baselines"]["high"]
    assert hv["ahead"] == "mixtraining"
    # The volumes are in the objectives' units (here 18.0, not a fraction): the headline says so.
    line = hypervolume_line(verdict_of(spec, ref, samples=200))
    assert line is not None and "in val_accuracy x train_latency_s" in line
    assert "18 [18, 18]" in line and "MixTraining ahead" in line
    single = verdict_of({**spec, "s": [(0.95, 5.0)]}, ref, samples=50).hypervolume
    assert single["mixtraining"]["unconfirmed"] == 1 and single["ahead"] is None
    overlap = {"low": 1.0, "high": 3.0, "unconfirmed": 0}
    assert interval_ahead(overlap, {"low": 2.0, "high": 4.0, "unconfirmed": 0}) is None
    assert interval_ahead(overlap, {"low": 0.0, "high": 0.5, "unconfirmed": 0}) == "mixtraining"


# ---------------------------------------------------------------- through `tune-app analyze`


def confirmed_experiment(path: Path) -> Path:
    """FINISHED plus: m2 re-run with seeds 1, 2 (a clear win), SSL+SL with a third seed."""
    m2 = dict(alpha=0.4, rho=0.6, anneal="cosine")
    extra = [
        trial("m2s1", 0.86, 14.0, seed=1, **m2),
        trial("m2s2", 0.855, 14.0, seed=2, **m2),
        trial("s2", 0.83, 20.0, "ssl_sl", 2),
    ]
    return write_experiment(path, FINISHED + extra)


def test_analyze_reports_only_confirmed_claims(tmp_path: Path, capsys) -> None:
    exp = confirmed_experiment(tmp_path / "exp")
    assert main(["analyze", str(exp)]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 confirmed configurations dominate SSL+SL at p < 0.05" in out
    assert "6 unconfirmed (single-seed) configurations make no claim" not in out
    assert "5 unconfirmed (single-seed) configurations make no claim" in out
    assert "MixTraining trials dominate" not in out  # single runs never reach the headline
    summary = json.loads((exp / "analysis" / "summary.json").read_text())
    a = analyze_experiment(load_experiment(exp))
    m2 = a.done.set_index("trial_id").loc["m2", "config_id"]
    assert summary["confirmed_dominance"] == {"ssl_sl": [m2], "sl": []}
    tests = summary["verdict"]["tests"]
    assert {t["metric"] for t in tests} == {"val_accuracy", "train_latency_s"}
    assert all(t["p_holm"] < 0.05 and t["ci_low"] <= t["diff"] <= t["ci_high"] for t in tests)
    report = (exp / "analysis" / "report.md").read_text()
    assert "## Verdict over configurations" in report and "p (Holm)" in report
    data = plot_data(a)
    assert [c.config_id for c in data.configs] == [m2] and data.configs[0].claims == ("ssl_sl",)
    assert data.configs[0].y_err == pytest.approx(np.std([0.85, 0.86, 0.855], ddof=1))
    html = (exp / "analysis" / "pareto.html").read_text()
    assert '"square"' in html and m2 in html


def test_a_configuration_suggested_twice_is_not_confirmed_by_its_repeated_seed(
    tmp_path: Path,
) -> None:
    """The sampler can suggest a configuration again; its second seed-0 run is the same draw
    of seed noise, so it is left out (said why), and the configuration stays a single run."""
    m2 = dict(alpha=0.4, rho=0.6, anneal="cosine")
    again = trial("m2again", 0.85, 14.0, seed=0, **m2)  # m2 (seed 0) suggested a second time
    a = analyze_experiment(load_experiment(write_experiment(tmp_path / "e", FINISHED + [again])))
    mix = a.verdict.configs[a.verdict.configs["pipeline"] == "mixtraining"]
    assert a.basis == "single runs" and not mix["confirmed"].any()
    assert left_out_counts(a)["repeated seed"] == 1  # FINISHED leaves out two others
    row = a.verdict.configs.set_index("config_id").loc[
        a.done.set_index("trial_id").loc["m2", "config_id"]
    ]
    assert row["n"] == 1 and row["trial_ids"] == ["m2"]
    # with real seeds 1 and 2 it is confirmed on three distinct seeds, the repeat still out
    both = FINISHED + [again, *confirmed_rows(m2)]
    a = analyze_experiment(load_experiment(write_experiment(tmp_path / "f", both)))
    configs = a.verdict.configs
    confirmed = configs[configs["confirmed"] & (configs["pipeline"] == "mixtraining")]
    assert confirmed["seeds"].tolist() == [[0, 1, 2]]


def confirmed_rows(m2: dict) -> list:
    return [trial("m2s1", 0.86, 14.0, seed=1, **m2), trial("m2s2", 0.855, 14.0, seed=2, **m2)]


def test_pareto_html_draws_unconfirmed_and_confirmed_differently(tmp_path: Path) -> None:
    exp = confirmed_experiment(tmp_path / "exp")
    assert main(["analyze", str(exp)]) == 0
    html = (exp / "analysis" / "pareto.html").read_text()
    start = html.index("Plotly.newPlot(") + len("Plotly.newPlot(")
    traces = json.JSONDecoder().raw_decode(html[html.index("[", start) :])[0]
    confirmed = [t for t in traces if t.get("legendgroup") == "confirmed"]
    assert len(confirmed) == 1 and confirmed[0]["error_y"]["visible"]
    assert confirmed[0]["marker"]["symbol"] == "square"
    single = [t for t in traces if t.get("name", "").startswith("MixTraining")]
    assert single and all(t["marker"].get("symbol") in (None, "circle") for t in single)


def test_single_seed_front_is_the_trial_front(tmp_path: Path) -> None:
    """With one seed per configuration the choice is over single runs and equals a per-trial
    choice made from scratch: the trials' own front, and its knee by the same rule."""
    a = analyze_experiment(load_experiment(write_experiment(tmp_path / "f", FINISHED)))
    assert a.basis == "single runs"
    values = a.mix[METRICS].to_numpy(dtype=float)
    brute = [i for i, v in enumerate(values) if not any(dominates_brute(w, v) for w in values)]
    assert set(a.front["trial_id"]) == set(a.mix["trial_id"].iloc[brute])
    costs = np.column_stack([-values[brute, 0], values[brute, 1]])
    order = np.lexsort(costs.T)  # fastest first, as the per-trial ranking was
    done = np.column_stack([-a.done["val_accuracy"], a.done["train_latency_s"]]).astype(float)
    knee = knee_index(costs[order], (done.min(axis=0), done.max(axis=0)))
    assert a.knee_config["trial_ids"] == [a.mix["trial_id"].iloc[brute[order[knee]]]]


def dominates_brute(a: np.ndarray, b: np.ndarray) -> bool:
    """(accuracy up, latency down): a is no worse anywhere and better somewhere."""
    no_worse = a[0] >= b[0] and a[1] <= b[1]
    return bool(no_worse and (a[0] > b[0] or a[1] < b[1]))


def test_trials_parquet_rows_carry_role_and_the_config_id_analysis_computes(tmp_path) -> None:
    import yaml

    from search_spaces import load_space
    from tests.support import SPACE
    from tune_app.results import trial_row

    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    space = load_space(str(path))
    knobs = {"alpha": 0.3, "rho": 0.7, "lam": 0.5, "anneal": "cosine"}
    rows = [
        trial_row(space, "a", "TERMINATED", {**knobs, "seed": 0}, {}, None),
        trial_row(space, "b", "TERMINATED", {**knobs, "seed": 1, "role": "confirm"}, {}, None),
        trial_row(space, "c", "TERMINATED", {"pipeline": "sl", "seed": 0}, {}, None),
        trial_row(space, "d", "TERMINATED", {"pipeline": "sl", "seed": 1}, {}, None),
    ]
    table = pd.DataFrame(rows)
    assert table["role"].tolist() == ["search", "confirm", "baseline", "baseline"]
    assert table["config_id"].nunique() == 2
    assert table["config_id"].iloc[0] == table["config_id"].iloc[1]
    # The id analysis computes for a table without the column (Ray's files) is the same.
    recomputed = config_ids(table.drop(columns="config_id"), yaml.safe_load(path.read_text()))
    assert recomputed.tolist() == table["config_id"].tolist()


@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        ({"top_k": 0, "seeds": [1]}, "search.confirm.top_k: expected an integer >= 1"),
        ({"top_k": 2, "seeds": [0]}, "search.confirm.seeds: 0 is search.seed"),
        ({"top_k": 2, "seeds": []}, "search.confirm.seeds: expected a non-empty list"),
        ({"top_k": 2, "seeds": [1, 1]}, "search.confirm.seeds: 1 is listed twice"),
        ({"top_k": 2, "seeds": ["1"]}, "search.confirm.seeds: expected an integer in [0,"),
        ({"top_k": 2, "seeds": [1], "every": 1}, "search.confirm.every: unknown key"),
    ],
)
def test_search_confirm_is_validated(confirm: dict, message: str) -> None:
    from search_spaces import SpaceError, load_space

    with pytest.raises(SpaceError, match=re.escape(message)):
        load_space("vit_mix", {"search.confirm": confirm})


def test_search_confirm_round_trips_and_is_off_by_default(tmp_path) -> None:
    import yaml

    from search_spaces import load_space

    space = load_space("vit_mix", {"search.confirm": {"top_k": 3, "seeds": [1, 2]}})
    assert (space.confirm_top_k, space.confirm_seeds) == (3, (1, 2))
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space.to_dict()))
    assert load_space(str(path)) == space
    plain = load_space("vit_mix", {"search.confirm": None})
    assert plain.confirm_top_k == 0 and "confirm" not in plain.to_dict()["search"]
    assert load_space("vit_mix") == space  # the bundled default confirms 3 configs, seeds 1, 2


def test_report_flags_trials_whose_measured_latency_ran_far_above_calibration() -> None:
    from analysis.verdict_report import latency_section

    done = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d"],
            "pipeline": ["mixtraining", "mixtraining", "sl", "ssl_sl"],
            "train_latency_s": [11.0, 33.0, 5.5, 22.0],  # b ran 3x its calibration
            "calibrated_latency_s": [10.0, 10.0, 5.0, 20.0],
        }
    )
    text = "\n".join(latency_section(done))
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.count("|") > 5}
    assert "contention" in rows["b"] and "3.00" in rows["b"]
    assert all("contention" not in rows[t] for t in ("a", "c", "d"))
    assert latency_section(done.drop(columns="calibrated_latency_s")) == []
