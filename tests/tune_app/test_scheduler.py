"""search.scheduler: Pareto halving on hand-made rungs, its validation, the PRUNED hand-off.

A driver SIGKILLed mid-search under Pareto halving, then resumed, is tested in test_search.py
(`test_killed_driver_resumes_every_trial_exactly_once`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

import tune_app.scheduler
from analysis.pareto import pareto_mask, rank_points
from search_spaces import SpaceError, build_space
from tests.support import SPACE
from tune_app.cli import main
from tune_app.scheduler import (
    STOPPED_KEY,
    ParetoHalving,
    continues,
    rung_levels,
    stoppable,
)
from tune_app.searcher import build_searcher

GOALS = ["maximize", "minimize"]  # val_accuracy, train_latency_s


def test_rungs_are_counted_up_to_but_not_at_the_last_supervised_epoch() -> None:
    assert rung_levels(1, 3, 10) == [1, 3, 9]
    assert rung_levels(1, 3, 9) == [1, 3]  # a rung at the last epoch would save nothing
    assert rung_levels(2, 2, 16) == [2, 4, 8]
    assert rung_levels(4, 2, 4) == []


def test_the_dominated_trial_is_stopped_and_the_front_continues() -> None:
    rung = {"a": (0.9, 10.0), "b": (0.5, 20.0), "c": (0.8, 5.0)}  # b: worse than a and c
    assert not continues(rung, "b", GOALS, eta=2)
    # keep ceil(3/2) = 2 of 3: the two front points a and c.
    assert continues(rung, "a", GOALS, eta=2) and continues(rung, "c", GOALS, eta=2)


def test_within_a_front_the_larger_hypervolume_contribution_wins() -> None:
    # One front of three. In costs (-acc, latency) the reference point is the worst plus 10% of
    # the range: (-0.2 + 0.07, 9 + 0.8). Exclusive boxes: a (-0.9, 9) only 0.05 x 0.8 = 0.04
    # (b nearly dominates it), b (-0.85, 8) 0.65 x 1 = 0.65, c (-0.2, 1) 0.07 x 8.8 = 0.616.
    rung = {"a": (0.9, 9.0), "b": (0.85, 8.0), "c": (0.2, 1.0)}
    assert pareto_mask(np.array(list(rung.values())), GOALS).all()
    assert rank_points(np.array(list(rung.values())), GOALS) == [1, 2, 0]
    assert [continues(rung, t, GOALS, eta=3) for t in rung] == [False, True, False]
    assert [continues(rung, t, GOALS, eta=1.5) for t in rung] == [False, True, True]


def test_the_first_trial_at_a_rung_always_continues_and_duplicates_keep_arrival_order() -> None:
    assert continues({"a": (0.1, 99.0)}, "a", GOALS, eta=3)
    rung = {"a": (0.5, 5.0), "b": (0.5, 5.0)}
    assert continues(rung, "a", GOALS, eta=2) and not continues(rung, "b", GOALS, eta=2)


def space_with(**scheduler) -> dict:
    return {**SPACE, "search": {**SPACE["search"], "scheduler": scheduler}}


def test_the_space_validates_the_scheduler_naming_the_field() -> None:
    assert build_space(SPACE, "s.yaml").scheduler == {"type": "fifo"}
    space = build_space(space_with(type="pareto_halving", eta=2), "s.yaml")
    assert space.scheduler == {"type": "pareto_halving", "grace": 1, "eta": 2}
    assert build_space(space.to_dict(), "again.yaml") == space
    for bad, field in [
        ({"type": "asha"}, "search.scheduler.type"),
        ({"type": "pareto_halving", "eta": 1}, "search.scheduler.eta"),
        ({"type": "pareto_halving", "grace": 0}, "search.scheduler.grace"),
        ({"type": "pareto_halving", "rungs": 3}, "search.scheduler.rungs"),
        ({"type": "fifo", "eta": 3}, "search.scheduler.eta"),
    ]:
        with pytest.raises(SpaceError, match=f"s.yaml: {field}"):
            build_space(space_with(**bad), "s.yaml")


class FakeTrial:
    """What ParetoHalving reads of a Ray trial."""

    def __init__(self, trial_id: str, config: dict) -> None:
        self.trial_id, self.config, self.last_result = trial_id, config, {}


def test_rungs_skip_ssl_epochs_and_spare_baselines_and_confirmations() -> None:
    # The tiny space: 2 SSL + 2 SL epochs; rho 0.5 gives plan ssl 1, mix 1, sl 1.
    space = build_space(space_with(type="pareto_halving", grace=1, eta=2), "s.yaml")
    sched = ParetoHalving(space, grace=1, eta=2)
    knobs = {"alpha": 0.5, "rho": 0.5, "lam": 0.5, "anneal": "none", "pipeline": "mixtraining"}
    good, bad = FakeTrial("good", knobs), FakeTrial("bad", knobs)
    ssl = {"epoch": 1, "phase": "ssl", "val_accuracy": None, "train_latency_s": 1.0}
    assert sched.on_trial_result(None, bad, ssl) == "CONTINUE"  # SSL: no rung, no accuracy
    assert sched.rungs == {}
    first = {"epoch": 2, "phase": "mix", "train_latency_s": 2.0}
    assert sched.on_trial_result(None, good, {**first, "val_accuracy": 0.9}) == "CONTINUE"
    assert sched.on_trial_result(None, bad, {**first, "val_accuracy": 0.1}) == "STOP"
    assert sched.rungs == {1: {"good": (0.9, 2.0), "bad": (0.1, 2.0)}}
    sched.on_trial_complete(None, bad, {})
    assert bad.last_result == {STOPPED_KEY: 1}
    assert not stoppable({"pipeline": "ssl_sl"}) and not stoppable({**knobs, "role": "confirm"})
    confirm = FakeTrial("confirm", {**knobs, "role": "confirm"})
    assert sched.on_trial_result(None, confirm, {**first, "val_accuracy": 0.0}) == "CONTINUE"


def test_a_stopped_trial_reaches_optuna_as_pruned(tmp_path: Path) -> None:
    space = build_space(SPACE, str(tmp_path / "s.yaml"))
    optuna.create_study(
        study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}", directions=GOALS
    )
    searcher = build_searcher(space, tmp_path, "s")
    for i in range(2):  # the two baselines
        searcher.suggest(f"b{i}")
        searcher.on_trial_complete(f"b{i}", result={"val_accuracy": 0.5, "train_latency_s": 1})
    searcher.suggest("t0"), searcher.suggest("t1")
    partial = {"val_accuracy": 0.2, "train_latency_s": 0.5, STOPPED_KEY: 1}
    searcher.on_trial_complete("t0", result=partial)
    searcher.on_trial_complete("t1", result={"val_accuracy": 0.6, "train_latency_s": 2.0})
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]


def test_a_search_with_pareto_halving_prunes_what_it_stops(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Latency is measured, so real rankings vary run to run: here only the first trial to reach
    # the rung (one MIX epoch in) continues, which makes the count exact (2 of 3 stopped).
    monkeypatch.setattr(
        tune_app.scheduler, "continues", lambda rung, tid, *_: next(iter(rung)) == tid
    )
    raw = space_with(type="pareto_halving", grace=1, eta=2)
    raw["parameters"] = {**raw["parameters"], "rho": {"value": 0.5}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    args = ["search", "--space", str(path), "--storage-path", str(tmp_path / "exp")]
    assert main([*args, "--name", "h", "--wandb", "disabled"]) == 0
    assert (
        "Stopped early by search.scheduler: 2 (2 at 1 supervised epoch(s))"
        in capsys.readouterr().err
    )
    experiment = tmp_path / "exp" / "h"
    table = pd.read_parquet(experiment / "trials.parquet")
    stopped = table[table["stopped_at_rung"].notna()]
    assert len(stopped) == 2 and (stopped["stopped_at_rung"] == 1).all()
    assert not stopped["complete"].any() and (stopped["pipeline"] == "mixtraining").all()
    assert (stopped["epochs_done"] < stopped["epochs_planned"]).all()
    assert table[table["pipeline"] != "mixtraining"]["complete"].all()  # baselines ran out
    study = optuna.load_study(study_name="h", storage=f"sqlite:///{experiment / 'optuna.db'}")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(pruned) == 2 and len(complete) == 1
    assert table["complete"].sum() == 3  # the one MixTraining trial left and two baselines
    # --resume: Ray keeps no scheduler state; a new scheduler rebuilds it from the trials.
    from ray import tune

    rebuilt = ParetoHalving(build_space(raw, str(path)), grace=1, eta=2)
    for trial in tune.ExperimentAnalysis(str(experiment)).trials:
        rebuilt.on_trial_add(None, trial)
    assert set(rebuilt.rungs) == {1} and len(rebuilt.rungs[1]) == 3  # every MixTraining trial
    assert rebuilt.stopped == dict(zip(stopped["trial_id"], [1, 1], strict=True))
    # The offline replay makes the live decisions again from the recorded results.
    from benchmarks.replay_scheduler import load_results, replay

    replayed = replay(build_space(raw, str(path)), load_results(experiment), grace=1, eta=2)
    assert replayed["stopped"] == 2 and replayed["recall"] == 1.0
    assert replayed["saved"] == 0.0  # their recorded results already end where they stopped
