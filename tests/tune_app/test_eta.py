"""The ETA of a running search (tune_app.eta, tune_app.progress): arithmetic against closed
forms on a synthetic plan and calibration, the per-phase counts, and the `--verbose` switch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from search_spaces import load_space
from tests.support import SPACE
from tune_app.eta import EpochCosts, TrialWork, estimate, slot_model
from tune_app.progress import (
    SearchProgress,
    counts_text,
    plan_of,
    reporter,
    reuses_ssl,
    step_ratios,
    trial_work,
)

# A synthetic calibration: seconds per epoch of each phase, as the trials' reports show them.
SSL, MIX, SL = 3.0, 5.0, 2.0


def learnt(costs: EpochCosts, phases: list[str], trial: str = "t") -> EpochCosts:
    """Feed one trial's epoch-by-epoch reports (cumulative calibrated seconds)."""
    total = 0.0
    for epoch, phase in enumerate(phases, start=1):
        total += {"ssl": SSL, "mix": MIX, "sl": SL}[phase]
        costs.observe(trial, epoch, phase, total)
    return costs


def test_epoch_costs_are_learnt_from_report_increments_and_price_a_plan() -> None:
    costs = learnt(EpochCosts(), ["ssl", "ssl", "mix", "sl"])
    assert (costs.cost("ssl"), costs.cost("mix"), costs.cost("sl")) == (SSL, MIX, SL)
    assert costs.plan_cost({"ssl": 2, "mix": 1, "sl": 3}) == 2 * SSL + MIX + 3 * SL
    # A repeated report of the same epoch, or a gap, adds no sample.
    costs.observe("t", 4, "sl", 100.0)
    costs.observe("t", 9, "sl", 200.0)
    assert costs.cost("sl") == SL


def test_a_phase_is_priced_from_the_calibration_ratio_until_one_is_seen() -> None:
    costs = learnt(EpochCosts(over_sl={"mix": 1.5, "ssl": 0.5}), ["sl"])
    assert costs.cost("mix") == pytest.approx(1.5 * SL)
    assert costs.cost("ssl") == pytest.approx(0.5 * SL)
    learnt(costs, ["ssl"], trial="s")
    assert costs.cost("ssl") == SSL
    assert EpochCosts().plan_cost({"mix": 1}) is None  # nothing to go on: no estimate yet
    learnt(costs, ["mix"], trial="u")
    assert costs.cost("mix") == MIX  # a measured MIX epoch wins over the ratio


def test_estimate_prices_training_by_the_rate_and_adds_each_trials_overhead() -> None:
    costs = learnt(EpochCosts(), ["ssl", "mix", "sl"])
    plan = {"ssl": 1, "mix": 1, "sl": 1}  # 10 calibrated seconds
    work = [
        TrialWork(plan, finished=True, calibrated_done=10.0, slot_s=25.0, train_s=12.0),
        TrialWork(plan, finished=True, calibrated_done=10.0, slot_s=15.0, train_s=8.0),
        TrialWork(plan, calibrated_done=3.0, slot_s=9.0, train_s=4.0),  # running: 7 s left
        TrialWork(plan),  # pending
    ]
    unseen = [{"ssl": 0, "mix": 0, "sl": 2}, {"ssl": 0.5, "mix": 0.5, "sl": 1.0}]
    found = estimate(work, unseen, costs, slots=2)
    rate, overhead = (12.0 + 8.0) / 20.0, ((25.0 - 12.0) + (15.0 - 8.0)) / 2  # finished only
    assert (found.rate, found.overhead) == pytest.approx((rate, overhead))
    running = rate * 7.0 + overhead * 0.7  # the share of its plan still to run
    pending = rate * 10.0 + overhead
    fresh = rate * 2 * SL + overhead + rate * (0.5 * SSL + 0.5 * MIX + SL) + overhead
    assert found.seconds == pytest.approx((running + pending + fresh) / 2)
    assert found.remaining_calibrated == pytest.approx(7.0 + 10.0 + 2 * SL + 6.0)
    # Before anything finished, the running trials' slot time per calibrated second.
    assert slot_model([TrialWork(plan, calibrated_done=4.0, slot_s=6.0)]) == (1.5, 0.0)
    assert estimate([TrialWork(plan)], [], costs, 2).seconds is None  # no epoch yet


def test_under_the_budget_schedule_a_mixtraining_plan_leaves_out_its_cached_ssl_epochs() -> None:
    """vit_mix shares each seed's SSL prefix: a MixTraining trial of a baseline seed trains no
    SSL epoch, so its plan has none, and the SSL epochs it reports from the cache count neither
    as work done nor in the rate (the first trials to finish, the baselines, train all theirs)."""
    space, same = load_space("vit_mix.yaml"), load_space("vit_mix_same.yaml")
    knobs = {"alpha": 0.5, "rho": 0.5, "lam": 0.5, "anneal": "none"}
    assert reuses_ssl(space, knobs) and reuses_ssl(space, {**knobs, "seed": 2})
    assert plan_of(space, knobs) == {"ssl": 0, "mix": 2, "sl": 2}
    assert not reuses_ssl(space, {**knobs, "seed": 7})  # no SSL+SL baseline of that seed
    assert plan_of(space, {**knobs, "seed": 7}) == {"ssl": 2, "mix": 2, "sl": 2}
    assert not reuses_ssl(space, {"pipeline": "ssl_sl", "seed": 0})
    assert plan_of(space, {"pipeline": "ssl_sl", "seed": 0})["ssl"] == 4
    assert not reuses_ssl(same, knobs)  # `phase`: reuse is not foreseen
    assert plan_of(same, knobs) == {"ssl": 2, "mix": 2, "sl": 2}

    costs = learnt(EpochCosts(), ["ssl", "mix", "sl"])
    # A finished trial that replayed 2 cached SSL epochs (6 calibrated s) and trained 7 more
    # calibrated seconds in 14 s: 2 s per trained calibrated second, not 14 / 13.
    result = {"calibrated_latency_s": 13.0, "compute_s": 14.0, "time_total_s": 16.0}
    done = trial_work({}, True, {**result, "ssl_epochs_reused": 2}, plan_skips_reuse=True)
    assert done.trained(SSL) == 7.0 and slot_model([done], SSL) == (2.0, 2.0)
    unforeseen = trial_work({}, True, {**result, "ssl_epochs_reused": 2})
    assert slot_model([unforeseen], SSL) == (14.0 / 13.0, 2.0)  # as before: in the rate
    # A running trial 1 cached SSL epoch in: its whole plan (1 MIX + 1 SL epoch) is still left.
    running = trial_work(
        {"ssl": 0, "mix": 1, "sl": 1},
        False,
        {"calibrated_latency_s": SSL, "ssl_epochs_reused": 1},
        plan_skips_reuse=True,
    )
    found = estimate([done, running], [], costs, slots=1)
    assert found.remaining_calibrated == pytest.approx(MIX + SL)
    assert found.seconds == pytest.approx(2.0 * (MIX + SL) + 2.0)


@dataclass
class FakeTrial:
    """The attributes of a Ray Trial the reporter reads."""

    trial_id: str
    config: dict[str, Any]
    status: str = "PENDING"
    last_result: dict[str, Any] = field(default_factory=dict)


def test_progress_counts_each_phase_and_prices_the_trials_not_yet_created(tmp_path: Path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**SPACE, "search": {**SPACE["search"], "confirm": {
        "top_k": 2, "seeds": [1]}}}))  # fmt: skip
    space = load_space(str(path))  # 2 + 2 epochs; rho steps 0.5 and 1 (1 and 2 MIX epochs)
    progress = SearchProgress(space, "search", over_sl={}, slots=2)
    done = {"epoch": 2, "calibrated_latency_s": 2 * SL, "time_total_s": 12.0, "phase": "sl"}
    trials = [
        FakeTrial("b0", {"pipeline": "sl", "seed": 0}, "TERMINATED", done),
        FakeTrial("b1", {"pipeline": "ssl_sl", "seed": 0}, "RUNNING"),
        FakeTrial("m0", {"alpha": 0.5, "rho": 1.0, "lam": 0.5, "anneal": "none"}),
    ]
    for t, phases in (("b0", ["sl", "sl"]), ("b1", ["ssl", "ssl"]), ("x", ["mix"])):
        learnt(progress.costs, phases, trial=t)
    trials[1].last_result = {"epoch": 2, "calibrated_latency_s": 2 * SSL, "time_total_s": 9.0}
    counts, eta = progress.snapshot(trials)
    assert counts_text(counts) == "baselines 1/2; search 0/3; confirmation 0/2"
    assert (counts["search"].running, counts["search"].pending) == (0, 3)
    # Work left: b1's 2 SL epochs; m0 (2 MIX epochs); 2 unseen search trials and 2 confirm
    # trials at m0's plan (the only MixTraining plan known so far).
    left = 2 * SL + 5 * (2 * MIX)
    assert eta.remaining_calibrated == pytest.approx(left)
    assert eta.rate == pytest.approx(12.0 / (2 * SL))
    assert eta.seconds == pytest.approx(left * eta.rate / 2)
    lines = progress.status_text(trials)
    assert lines[0].startswith("tune-app tiny (search phase): elapsed") and "ETA" in lines[0]


def test_verbose_brings_back_rays_table_over_the_spaces_objectives(tmp_path, monkeypatch):
    from ray import tune

    space = load_space("vit_mix.yaml")
    table = reporter(space, "search", True, None, 2)
    assert isinstance(table, tune.CLIReporter)
    assert "calibrated_latency_s" in table._metric_columns
    assert "train_latency_s" not in table._metric_columns
    assert isinstance(reporter(space, "search", False, None, 2), SearchProgress)
    costs = {"cpu": {"ssl": 0.05, "sl": 0.08, "mix_full": 0.12}}
    # SSL on other images than SL's (the default, `ssl_source: all`) has epochs of its own size
    assert step_ratios(space, costs) == pytest.approx({"mix": 1.5})
    same = load_space("vit_mix_same.yaml")  # SSL on the labelled images: SL-sized epochs
    assert step_ratios(same, costs) == pytest.approx({"mix": 1.5, "ssl": 0.625})
    # The flag reaches the run: `search --verbose` and `confirm --verbose`.
    seen = {}
    import tune_app.experiment as experiment

    monkeypatch.setattr(experiment, "run_search", lambda *a, **k: seen.update(k) or 0)
    monkeypatch.setattr("tune_app.search.check_data", lambda space: None)
    from tune_app.cli import main

    args = ["search", "--space", "vit_mix.yaml", "--storage-path", str(tmp_path), "--verbose"]
    assert main([*args, "--wandb", "disabled"]) == 0
    assert seen["verbose"] is True


def test_eta_accuracy_reads_a_search_log(tmp_path: Path, capsys) -> None:
    from benchmarks.eta_accuracy import main as eta_main

    lines = ["tune-app search: tiny -> somewhere"]
    lines.append("[23:59:50] tune-app tiny (search phase): elapsed 0:10 | baselines 0/2 | ETA x")
    etas = ["0:40", "0:30", "0:20", "0:10", "0:00", "0:00", "0:00", "0:00", "0:00", "0:05"]
    for k, eta in enumerate(etas):  # one trial a second after midnight, then the last at 0:20
        at = f"00:00:{k + (10 if k == 9 else 0):02d}"
        lines.append(f"[{at}] trial t{k} (sl, seed 0) finished: val_accuracy 0.5 | x | ETA {eta} (")
    log = tmp_path / "search.log"
    log.write_text("\n".join(lines) + "\n")
    assert eta_main([str(log)]) == 0
    rows = capsys.readouterr().out.splitlines()
    # Start 23:59:40; real end 00:00:19 (39 s). At 10% (t0 at 00:00:00): predicted 00:00:40.
    assert rows[0] == "10 trials"
    assert rows[3] == "| 1 (10%) | 20 | 60 | 39 | 21 | +53.8% | +110.5% |"
    assert rows[5].startswith("| 9 (90%) | 28 | 28 | 39 | -11 |")
    assert eta_main([str(tmp_path / "missing.log")]) == 2


def test_a_confirm_phase_prices_its_plans_from_the_search_trials_epochs(tmp_path: Path):
    """Its own first trials may all be rho = 1 (MIX epochs only): the SSL and SL epochs the
    search phase reported (<exp>/<trial>/result.json) price the others from the start."""
    import json

    space = load_space("vit_mix.yaml")
    for trial, phases in (("b", ["ssl", "sl"]), ("m", ["mix"])):
        (tmp_path / trial).mkdir()
        rows, total = [], 0.0
        for epoch, phase in enumerate(phases, start=1):
            total += {"ssl": SSL, "mix": MIX, "sl": SL}[phase]
            rows.append({"epoch": epoch, "phase": phase, "calibrated_latency_s": total})
        # the trial ran its whole plan: 2 s of training per calibrated second, 10 s besides
        rows[-1].update(
            epochs_planned=len(phases), compute_s=2 * total, time_total_s=2 * total + 10
        )
        text = "\n".join(json.dumps({**r, "trial_id": trial}) for r in rows)
        (tmp_path / trial / "result.json").write_text(text + "\n")
    progress = SearchProgress(space, "confirmation", {}, 2, earlier=tmp_path)
    assert progress.costs.plan_cost({"ssl": 1, "mix": 3, "sl": 1}) == SSL + 3 * MIX + SL
    assert SearchProgress(space, "confirmation", {}, 2).costs.cost("ssl") is None
    # `tune-app confirm --top-k 1 --seeds 5 6`: the phase's own count, not the space's 3 x 2.
    alone = SearchProgress(space, "confirmation", {}, 2, earlier=tmp_path, confirm_count=2)
    assert alone.snapshot([])[0]["confirmation"].pending == 2
    # Before its first epoch, the confirm phase already has an ETA: the search's trials time it.
    counts, eta = progress.snapshot([])
    assert counts["confirmation"].pending == 6 and (eta.rate, eta.overhead) == (2.0, 10.0)
    assert eta.seconds == pytest.approx(6 * (2.0 * eta.remaining_calibrated / 6 + 10.0) / 2)


def test_on_a_terminal_the_display_is_drawn_with_rich_and_left_on_screen(monkeypatch, capsys):
    space = load_space("vit_mix.yaml")
    progress = SearchProgress(space, "search", {}, 2)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    done = {"epoch": 4, "phase": "sl", "calibrated_latency_s": 30.0, "time_total_s": 60.0}
    done |= {"val_accuracy": 0.66, "calibrated_latency_s": 30.0}
    mix = {"alpha": 0.5, "rho": 0.5, "lam": 0.5, "anneal": "none", "pipeline": "mixtraining"}
    trials = [
        FakeTrial("b0", {"pipeline": "sl", "seed": 0}, "TERMINATED", done),
        FakeTrial("m0", mix, "TERMINATED", {**done, "val_accuracy": 0.7}),
    ]
    progress.report(trials, done=False)
    assert progress.live is not None  # a rich Live display, redrawn in place
    progress.report(trials, done=True)
    assert progress.live is None  # stopped: the last state stays on screen
    err = capsys.readouterr().err
    assert "baselines" in err and "front so far" in err and "m0" in err
    assert " finished: " not in err  # no plain lines on a terminal
