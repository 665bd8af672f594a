"""Confirmation trials: the best single-seed configurations re-run with extra seeds.

A driver SIGKILLed during the confirmation phase, then resumed, is tested in
test_search_resume.py (`test_ctrl_c_then_a_moved_copy_killed_in_confirmation_resumes_and_agrees`).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from analysis.hypervolume import hypervolume, reference_point
from analysis.pareto import dominates, rank_points, to_minimize
from search_spaces import load_space
from tests.support import SPACE
from tune_app.cli import main
from tune_app.confirm import plan
from tune_app.wandb_records import read_run, run_files

GOALS = ["maximize", "minimize"]
# Three searched trials, the best two re-run with seed 1; no baselines (they are not confirmed).
CONFIRMED = {
    **SPACE,
    "search": {
        "sampler": "random",
        "num_samples": 3,
        "max_concurrent": 2,
        "seed": 0,
        "confirm": {"top_k": 2, "seeds": [1]},
    },
    "baselines": {"pipelines": [], "seeds": [0]},
}


def brute_rank(values: np.ndarray) -> list[int]:
    """Front number by repeated dominance checks, then exclusive hypervolume within a front."""
    costs = to_minimize(values, GOALS)
    ref = reference_point(costs)
    left, order = list(range(len(values))), []
    while left:
        front = [i for i in left if not any(dominates(costs[j], costs[i]) for j in left)]
        total = hypervolume(costs[front], ref)
        gain = {i: total - hypervolume(costs[[j for j in front if j != i]], ref) for i in front}
        order += sorted(front, key=lambda i: -gain[i])
        left = [i for i in left if i not in front]
    return order


@pytest.mark.parametrize("seed", range(20))
def test_rank_points_matches_brute_force(seed: int) -> None:
    values = np.random.default_rng(seed).random((9, 2))
    assert rank_points(values, GOALS) == brute_rank(values)


def test_rank_points_fills_from_the_next_front() -> None:
    # front: (0.9, 3) and (0.5, 1); the next front: (0.8, 4); then (0.1, 9)
    values = np.array([[0.1, 9.0], [0.8, 4.0], [0.9, 3.0], [0.5, 1.0]])
    order = rank_points(values, GOALS)
    assert set(order[:2]) == {2, 3} and order[2:] == [1, 0]
    assert rank_points(np.empty((0, 2)), GOALS) == []


def test_plan_skips_pairs_already_run(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(CONFIRMED))
    space = load_space(str(path))
    rows = [  # config a is best, then b; a already ran with seed 1
        ("a", 0, "search", 0.9, 1.0, 0.2),
        ("b", 0, "search", 0.5, 0.5, 0.3),
        ("c", 0, "search", 0.4, 2.0, 0.4),
        ("a", 1, "confirm", 0.8, 1.0, 0.2),
    ]
    table = pd.DataFrame(
        rows, columns=["config_id", "seed", "role", "val_accuracy", "train_latency_s", "alpha"]
    )
    table = table.assign(complete=True, rho=0.6, lam=0.5, anneal="none")
    configs = plan(table, space, top_k=2, seeds=[1, 2])
    assert [(c["alpha"], c["seed"]) for c in configs] == [(0.2, 2), (0.3, 1), (0.3, 2)]
    assert all(c["role"] == "confirm" and c["pipeline"] == "mixtraining" for c in configs)
    assert set(configs[0]) == {"alpha", "rho", "lam", "anneal", "pipeline", "seed", "role"}


@pytest.mark.wandb_offline
def test_search_then_confirm_command(finished_search, tmp_path: Path) -> None:
    """The shared search confirms its best 2 configurations with seed 1, then `tune-app
    confirm` adds seed 2 (in a copy: it writes into the experiment)."""
    experiment = finished_search.copy_to(tmp_path)
    table = pd.read_parquet(experiment / "trials.parquet")
    assert sorted(table["role"]) == ["baseline"] * 2 + ["confirm"] * 2 + ["search"] * 3
    assert table["complete"].all() and table["trial_id"].is_unique
    found, confirm = table[table["role"] == "search"], table[table["role"] == "confirm"]
    assert (confirm["seed"] == 1).all() and (found["seed"] != 1).all()
    # the two best of the single-seed front, each re-run once with the same knobs
    metrics = ["val_accuracy", "train_latency_s"]
    best = found.iloc[rank_points(found[metrics].to_numpy(), GOALS)[:2]]
    assert sorted(confirm["config_id"]) == sorted(best["config_id"])
    for _, row in confirm.iterrows():
        (twin,) = found[found["config_id"] == row["config_id"]].itertuples()
        assert (row["alpha"], row["anneal"]) == (twin.alpha, twin.anneal)
    # Optuna's study holds the sampled points only
    storage = optuna.storages.RDBStorage(f"sqlite:///{experiment / 'optuna.db'}")
    study = optuna.load_study(study_name="w", storage=storage)
    assert len(study.trials) == 3
    assert {round(t.params["alpha"], 9) for t in study.trials} == set(found["alpha"].round(9))
    assert (experiment / "confirm" / "tuner.pkl").exists()

    # tune-app confirm: seed 2 for the best two; a second call has nothing left to run
    args = ["confirm", str(experiment), "--seeds", "2", "--wandb", "offline"]
    assert main(args) == 0
    table = pd.read_parquet(experiment / "trials.parquet")
    confirm = table[table["role"] == "confirm"]
    for trial_id in confirm[confirm["seed"] == 2]["trial_id"]:  # the role reaches W&B as a tag
        (run_file,) = run_files(experiment / "wandb", trial_id)
        assert {"mixtraining", "confirm"} <= set(read_run(run_file).tags)
    assert len(table) == 9 and table["complete"].all()
    pairs = sorted(zip(confirm["config_id"], confirm["seed"], strict=True))
    assert pairs == sorted(itertools.product(best["config_id"], [1, 2]))
    assert main(args) == 0
    assert len(pd.read_parquet(experiment / "trials.parquet")) == 9
    assert not (experiment / "confirm-3").exists()
    assert len(optuna.load_study(study_name="w", storage=storage).trials) == 3


def test_confirm_rejects_a_folder_that_is_not_an_experiment(tmp_path: Path, capsys) -> None:
    assert main(["confirm", str(tmp_path), "--seeds", "1", "--top-k", "1"]) == 2
    assert "not a tune-app experiment" in capsys.readouterr().err
