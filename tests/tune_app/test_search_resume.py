"""Interrupt (Ctrl-C, SIGKILL), then --resume: optuna.db, trials.parquet and Ray agree.

A driver SIGKILLed during the search phase is tested in test_search.py
(`test_killed_driver_resumes_every_trial_exactly_once`), with the same agreement checks; one
killed during the confirmation phase here.

Each test runs a real driver process with a real Ray, stops it mid-search, and resumes it as a
user would; the study must then hold exactly the searched trials Ray ran, with their values.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from ray import tune

from analysis.load import read_results
from search_spaces import load_space
from tests.support import SPACE, start_driver, wait_while_alive
from tune_app.driver import RAY_ENV
from tune_app.searcher import build_searcher, reopen_in
from tune_app.wandb_records import read_run, run_files

ENV = {**os.environ, **RAY_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
# Three searched trials, two at a time, no baselines: the smallest search with trials both
# finished and in flight when the driver is stopped.
SMALL = {
    **SPACE,
    "search": {"sampler": "tpe", "num_samples": 3, "max_concurrent": 2, "seed": 0},
    "baselines": {"pipelines": [], "seeds": [0]},
}
# The same, then the best two configurations again with seed 1 (a confirmation phase).
CONFIRMED = {**SMALL, "search": {**SMALL["search"], "confirm": {"top_k": 2, "seeds": [1]}}}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tune_app.cli", *args]


def resume_args(storage: Path) -> list[str]:
    """`search --resume` as a user types it: the experiment knows the rest."""
    return ["search", "--name", "k", "--storage-path", str(storage), "--resume"]


def study_trials(experiment: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{experiment / 'optuna.db'}")
    return optuna.load_study(study_name="k", storage=storage).trials


def assert_agree(experiment: Path) -> None:
    """Every searched Ray trial complete once in trials.parquet, and once COMPLETE in the study."""
    table = pd.read_parquet(experiment / "trials.parquet")
    table = table[table["role"] == "search"]
    ray_trials = tune.ExperimentAnalysis(str(experiment)).trials
    assert sorted(t.trial_id for t in ray_trials) == sorted(table["trial_id"])
    assert all(t.status == "TERMINATED" for t in ray_trials)
    assert len(table) == 3 and table["complete"].all()
    trials = study_trials(experiment)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    told = sorted((round(t.params["alpha"], 9), tuple(t.values)) for t in trials)
    ran = sorted(
        (round(r.alpha, 9), (r.val_accuracy, r.train_latency_s)) for r in table.itertuples()
    )
    assert told == ran


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.ray
def test_ctrl_c_then_a_moved_copy_killed_in_confirmation_resumes_and_agrees(
    tmp_path: Path,
) -> None:
    """Three drivers of one search, each stopped a different way, as a user would meet them:

    1. Ctrl-C (SIGINT to the process group) once two trials reported an epoch: exit 130, the
       trials paused, never FAIL in the study.
    2. The folder copied elsewhere and resumed there; SIGKILL (the driver and its Ray) once a
       confirmation trial reported an epoch.
    3. `--resume` of the copy again, to the end: the study, Ray and trials.parquet agree, each
       confirmation trial ran each epoch once across both sessions, and the first folder's
       optuna.db was never written.

    The first driver logs to W&B offline; `--resume` takes no `--wandb`, so the confirmation
    phase a resumed session starts must log as the first driver would: same group, its role.
    """
    first, moved = tmp_path / "first", tmp_path / "moved"
    space = tmp_path / "confirmed.yaml"
    space.write_text(yaml.safe_dump(CONFIRMED))
    args = ["search", "--space", str(space), "--storage-path", str(first), "--name", "k"]
    driver = start_driver([*args, "--wandb", "offline"], ENV)

    def two_reported_one_unfinished() -> bool:
        reported = [rows for rows in map(read_results, first.glob("k/*/result.json")) if rows]
        unfinished = [r for r in reported if r[-1]["epoch"] < r[-1]["epochs_planned"]]
        return len(reported) >= 2 and bool(unfinished)

    wait_while_alive(driver, two_reported_one_unfinished, 300)
    # what Ctrl-C in a terminal delivers, to the whole foreground process group
    os.killpg(driver.pid, signal.SIGINT)
    assert driver.wait(timeout=300) == 130
    paused = study_trials(first / "k")
    assert optuna.trial.TrialState.FAIL not in [t.state for t in paused]
    assert optuna.trial.TrialState.RUNNING in [t.state for t in paused]
    assert (first / "k" / "trials.parquet").exists()  # the interrupted run's partial table
    assert not (first / "k" / "confirm").exists()  # the confirmation phase starts on a resume
    shutil.copytree(first, moved)
    before = digest(first / "k" / "optuna.db")
    raced = race_a_checkpoint(moved / "k")

    experiment, stale = moved / "k", moved / "k" / "trials.parquet"
    driver = start_driver(resume_args(moved), ENV)
    stale_seen_gone = False

    def confirming() -> bool:
        nonlocal stale_seen_gone
        stale_seen_gone = stale_seen_gone or not stale.exists()
        return bool(list(experiment.glob("confirm/*/result.json")))

    wait_while_alive(driver, confirming, 400)
    # analyze/export never read the interrupted run's table while the resumed run lived
    assert stale_seen_gone
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
    assert driver.wait(timeout=60) == -signal.SIGKILL
    assert not stale.exists()  # killed before the end

    done = subprocess.run(cli(*resume_args(moved)), env=ENV, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert_agree(experiment)
    assert digest(first / "k" / "optuna.db") == before  # the old copy is untouched
    table = pd.read_parquet(stale)
    assert sorted(table["role"]) == ["confirm"] * 2 + ["search"] * 3
    assert table["complete"].all() and table["trial_id"].is_unique
    confirm = table[table["role"] == "confirm"]
    assert confirm["config_id"].is_unique and (confirm["seed"] == 1).all()
    assert not (experiment / "confirm-2").exists()  # resumed, not started again
    for row in confirm.itertuples():  # each epoch reported once across both sessions
        lines = (experiment / "confirm" / row.trial_id / "result.json").read_text().splitlines()
        epochs = [json.loads(line)["epoch"] for line in lines]
        assert epochs == list(range(1, row.epochs_planned + 1)), epochs
    # the trial whose checkpoint Ray had replaced: resumed, each epoch once
    lines = (experiment / raced / "result.json").read_text().splitlines()
    (planned,) = table.loc[table["trial_id"] == raced, "epochs_planned"]
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, planned + 1))
    for row in table.itertuples():  # W&B: each epoch once, in the group of the first driver
        runs = [read_run(f) for f in run_files(experiment / "wandb", row.trial_id)]
        # A run file of the SIGKILLed session can be its header alone (W&B's service died with
        # the driver before writing the run record); the resumed session resends those rows.
        records = [r for r in runs if r.run_id]
        tags = {row.role, "mixtraining"}
        assert records and all(r.run_id == row.trial_id for r in records), row.trial_id
        assert all(r.group == "k" and tags <= set(r.tags) for r in records), row.trial_id
        epochs = sorted(h["epoch"] for r in runs for h in r.history)
        assert epochs == list(range(1, row.epochs_planned + 1)), (row.trial_id, epochs)


def race_a_checkpoint(experiment: Path) -> str:
    """Make one trial Ray will resume look as a driver killed in Ray's checkpoint race leaves
    it: the snapshot names checkpoint N, which is gone, and N+1 holds the trial's state (here
    N's own: a newer state needs more training; `trainers.run` tests the rows it reports
    again). Returns the trial's id."""
    for ray_trial in tune.ExperimentAnalysis(str(experiment)).trials:
        trial_dir = Path(ray_trial.path)
        rows = read_results(trial_dir / "result.json")
        if ray_trial.status in ("TERMINATED", "ERROR") or not rows or not ray_trial.checkpoint:
            continue  # Ray resumes no ended trial; the race needs a checkpoint and a row
        named = Path(ray_trial.checkpoint.path)
        # A newer one is the trial's next checkpoint, written before Ctrl-C reached the driver
        # and never registered (Ray writes its next one there).
        for newer in trial_dir.glob("checkpoint_*"):
            if newer.name > named.name:
                shutil.rmtree(newer)
        named.rename(named.with_name(f"checkpoint_{int(named.name[11:]) + 1:06d}"))
        return trial_dir.name
    raise AssertionError(f"no unfinished trial that reported in {experiment}")


def inner_searcher(experiment: Path):
    """The Optuna searcher of a search over SMALL in `experiment` (no baselines)."""
    experiment.mkdir(parents=True, exist_ok=True)
    space = experiment.parent / "small.yaml"
    space.write_text(yaml.safe_dump(SMALL))
    return build_searcher(load_space(str(space)), experiment, "k").searcher.searcher


def test_a_killed_drivers_orphan_study_trial_is_handed_out_again(tmp_path: Path) -> None:
    """Asked from Optuna after Ray's last snapshot: the resumed searcher reuses it."""
    first = inner_searcher(tmp_path / "k")
    first.suggest("t0")
    first.save(str(tmp_path / "searcher.pkl"))  # Ray's last snapshot before the kill
    orphan = first.suggest("t1")  # asked in optuna.db, never in the snapshot
    resumed = inner_searcher(tmp_path / "k")
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert resumed.suggest("t2") == orphan
    # the very study trial the killed driver asked for, not a fresh draw of the same values
    assert resumed._ot_trials["t2"].number == first._ot_trials["t1"].number
    for tid in ("t0", "t2"):
        resumed.on_trial_complete(tid, result={"val_accuracy": 0.5, "train_latency_s": 1.0})
    states = [t.state for t in study_trials(tmp_path / "k")]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2


def test_a_restored_searcher_uses_the_resumed_folders_db(tmp_path: Path) -> None:
    searcher = inner_searcher(tmp_path / "a" / "k")
    searcher.suggest("t0")
    searcher.save(str(tmp_path / "a" / "k" / "searcher.pkl"))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    before = digest(tmp_path / "a" / "k" / "optuna.db")
    reopen_in(tmp_path / "b" / "k")
    try:
        with open(tmp_path / "b" / "k" / "searcher.pkl", "rb") as f:
            restored = pickle.load(f)["_ot_study"]  # what Ray unpickles on resume
    finally:
        reopen_in(None)
    trial = restored.trials[0]
    restored.tell(trial.number, [0.5, 1.0])
    assert digest(tmp_path / "a" / "k" / "optuna.db") == before
    assert study_trials(tmp_path / "b" / "k")[0].state == optuna.trial.TrialState.COMPLETE


def test_the_w_and_b_logger_follows_a_moved_experiment(tmp_path: Path) -> None:
    """Unpickled from tuner.pkl with the old path, the logger writes into the resumed folder."""
    from tune_app.searcher import reopen_in
    from tune_app.wandb_log import TrialLogger

    old, new = tmp_path / "old" / "exp", tmp_path / "new" / "exp"
    logger = TrialLogger(fixed={}, experiment=old, mode="offline", project="p", group="g")
    logger = pickle.loads(pickle.dumps(logger))  # as Tuner.restore brings it back
    logger.follow_move()
    assert logger.experiment == old  # not resuming: nothing moves
    reopen_in(new)
    try:
        logger.follow_move()
    finally:
        reopen_in(None)
    assert logger.experiment == new and logger.kwargs["wandb_dir"] == str(new)
