"""Interrupt (Ctrl-C), then --resume: optuna.db, trials.parquet and Ray agree.

A SIGKILLed driver's resume is tested in test_search.py
(`test_killed_driver_resumes_every_trial_exactly_once`), with the same agreement checks.

Each test runs a real driver process with a real Ray, stops it mid-search, and resumes it as a
user would; the study must then hold exactly the searched trials Ray ran, with their values.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from ray import tune

from search_spaces import load_space
from tests.support import SPACE, start_driver, wait_while_alive
from tune_app.driver import RAY_ENV
from tune_app.searcher import build_searcher, reopen_in

ENV = {**os.environ, **RAY_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
# Three searched trials, two at a time, no baselines: the smallest search with trials both
# finished and in flight when the driver is stopped.
SMALL = {
    **SPACE,
    "search": {"sampler": "tpe", "num_samples": 3, "max_concurrent": 2, "seed": 0},
    "baselines": {"pipelines": [], "seeds": [0]},
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tune_app.cli", *args]


def start_and_stop(tmp_path: Path, storage: Path, sig: signal.Signals) -> int:
    """Start a search, send `sig` once two trials have reported an epoch; its exit code."""
    space = tmp_path / "small.yaml"
    space.write_text(yaml.safe_dump(SMALL))
    args = ["search", "--space", str(space), "--storage-path", str(storage), "--name", "k"]
    driver = start_driver([*args, "--wandb", "disabled"], ENV)
    wait_while_alive(driver, lambda: len(list(storage.glob("k/*/result.json"))) >= 2, 300)
    assert driver.poll() is None  # alive when stopped: the test is about an interrupted driver
    # SIGKILL: the driver and the Ray it started die at once. SIGINT: what Ctrl-C in a terminal
    # delivers, to the whole foreground process group.
    os.killpg(driver.pid, sig)
    return driver.wait(timeout=300)


def resume(storage: Path) -> bool:
    """Resume as a user would; whether the interrupted run's table was gone while it ran."""
    table = storage / "k" / "trials.parquet"
    args = ["search", "--name", "k", "--storage-path", str(storage), "--resume"]
    log = storage.parent / "resume.log"
    with open(log, "w") as err:
        driver = subprocess.Popen(cli(*args), env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        stale_seen_gone = False
        while driver.poll() is None:
            stale_seen_gone = stale_seen_gone or not table.exists()
            time.sleep(0.2)
    assert driver.returncode == 0, log.read_text()[-3000:]
    return stale_seen_gone


def study_trials(experiment: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{experiment / 'optuna.db'}")
    return optuna.load_study(study_name="k", storage=storage).trials


def assert_agree(experiment: Path) -> None:
    """Every Ray trial complete once in trials.parquet, and once COMPLETE in the study."""
    table = pd.read_parquet(experiment / "trials.parquet")
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
def test_ctrl_c_then_resume_of_a_moved_copy_agrees(tmp_path: Path) -> None:
    """SIGINT pauses the trials (never FAIL in the study); a copy resumes into its own db."""
    first, moved = tmp_path / "first", tmp_path / "moved"
    assert start_and_stop(tmp_path, first, signal.SIGINT) == 130
    paused = study_trials(first / "k")
    assert optuna.trial.TrialState.FAIL not in [t.state for t in paused]
    assert optuna.trial.TrialState.RUNNING in [t.state for t in paused]
    assert (first / "k" / "trials.parquet").exists()  # the interrupted run's partial table
    shutil.copytree(first, moved)
    before = digest(first / "k" / "optuna.db")
    assert resume(moved)  # analyze/export never read the stale table while the run lived
    assert_agree(moved / "k")
    assert digest(first / "k" / "optuna.db") == before  # the old copy is untouched


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
