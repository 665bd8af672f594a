"""W&B logging, offline: one run per trial with the pinned history, config and no secrets.

A confirmation phase that a `--resume` starts logs as the first driver did: tested with the
drivers stopped and resumed in test_search_resume.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support import FAKE_WANDB_KEY, PINNED
from trainers import TrialConfig
from tune_app.cli import main
from tune_app.scheduler import reported_results
from tune_app.wandb_log import (
    TrialLogger,
    _WandbHub,
    has_credentials,
    last_reported_epoch,
    resolve_mode,
)
from tune_app.wandb_records import read_run, run_files

FAKE_KEY = FAKE_WANDB_KEY


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)  # the real host's name, for ~/.netrc
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc


def test_credentials_come_from_env_or_netrc(no_credentials, tmp_path, monkeypatch) -> None:
    assert not has_credentials()
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert has_credentials()
    monkeypatch.delenv("WANDB_API_KEY")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    (home / ".netrc").chmod(0o600)
    assert has_credentials()


def test_default_mode_without_credentials_is_offline(no_credentials, capsys) -> None:
    assert resolve_mode(None) == "offline"
    assert "no W&B credentials" in capsys.readouterr().err
    assert resolve_mode("offline") == "offline" and resolve_mode("disabled") == "disabled"


def test_a_logged_in_developer_is_not_taken_online_by_the_tests(tmp_path, monkeypatch) -> None:
    """conftest's guard: even with a `wandb login` in ~/.netrc, the default mode stays local."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr("tune_app.wandb_log.unreachable_reason", lambda: pytest.fail("online"))
    assert resolve_mode(None) == "offline"


@pytest.mark.wandb_offline
def test_offline_search_logs_every_trial_and_never_the_key(
    finished_search, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shared search ran with a (fake) key, which makes the default mode try online; W&B
    # cannot be reached from here, so the search must say so once and log offline instead.
    # one logging hub per phase (the search, its confirmation), not one per trial
    assert finished_search.hubs == 2
    err = finished_search.err
    assert "logging offline" in err and "wandb sync" in err
    experiment = finished_search.copy_to(tmp_path)  # analyze below adds a W&B run
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    table = pd.read_parquet(experiment / "trials.parquet")
    assert len(table) == 7  # 2 baselines, 3 searched, 2 confirmation runs
    for _, row in table.iterrows():
        files = run_files(experiment / "wandb", row["trial_id"])
        assert len(files) == 1, files
        run = read_run(files[0])
        assert run.run_id == row["trial_id"] and run.group == "w"
        assert run.name == f"{row['pipeline']}-{row['trial_id']}"
        assert ("baseline" in run.tags) == (row["pipeline"] != "mixtraining") and "ci" in run.tags
        assert [h["epoch"] for h in run.history] == list(range(1, row["epochs_planned"] + 1))
        for h in run.history:
            assert {k for k in PINNED if h.get(k) is not None} >= {
                "epoch",
                "phase",
                "train_latency_s",
                "train_gflops",
            }
            assert h["phase"] in ("ssl", "mix", "sl")
            # SSL epochs have no validation pass: W&B gets no value rather than a fake one.
            assert ("val_accuracy" in h) == (h["phase"] != "ssl")
        assert run.summary["test_accuracy"] == pytest.approx(row["test_accuracy"])
        expected = TrialConfig.from_dict({k: run.config[k] for k in TrialConfig().to_dict()})
        assert expected.pipeline == row["pipeline"] and expected.seed == row["seed"]
        if row["pipeline"] == "mixtraining":
            assert expected.alpha == pytest.approx(row["alpha"])
            assert expected.rho == pytest.approx(row["rho"])
    sync = subprocess.run(
        [
            str(Path(sysconfig.get_path("scripts")) / "wandb"),  # this interpreter's wandb CLI
            "sync",
            "--dry-run",
            str(experiment / "wandb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sync.returncode == 0, sync.stderr
    # analyze adds one "pareto" run to the same group: a table of every trial and the plot.
    assert main(["analyze", str(experiment)]) == 0
    pareto = run_files(experiment / "wandb", "pareto-w")
    assert len(pareto) == 1
    run = read_run(pareto[0])
    assert run.finished  # analyze returned only once W&B had written the whole run
    assert run.group == "w" and run.name == "pareto"
    logged = run.history[0]["trials"]
    assert logged["_type"] == "table-file" and logged["nrows"] == len(table)
    data = json.loads((pareto[0].parent / "files" / logged["path"]).read_text())
    assert "on_front" in data["columns"] and len(data["data"]) == len(table)
    front_flags = dict(
        zip(
            (r[0] for r in data["data"]),
            (r[data["columns"].index("on_front")] for r in data["data"]),
            strict=True,
        )
    )
    front = pd.read_parquet(experiment / "analysis" / "pareto.parquet")
    assert {t for t, on in front_flags.items() if on} == set(front["trial_id"])
    assert run.history[0]["pareto"]["_type"] == "image-file"
    for f in experiment.rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f"API key written to {f}"


@pytest.mark.wandb_offline
def test_a_torn_run_file_reads_up_to_the_tear(tmp_path: Path) -> None:
    """A run file cut mid-record (a kill, or a file still being written) is read, not fatal."""
    import os
    import subprocess as sp
    import sys

    script = (
        "import wandb\n"
        "r = wandb.init(project='p', id='torn1', mode='offline')\n"
        "for i in range(1, 6): r.log({'epoch': i, 'phase': 'sl'}, step=i)\n"
        "r.finish()\n"
    )
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SILENT": "true",
    }
    sp.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    (full,) = run_files(tmp_path / "wandb", "torn1")
    data = full.read_bytes()
    assert [h["epoch"] for h in read_run(full).history] == [1, 2, 3, 4, 5]
    # Cut after every 16th byte: each cut reads as a clean prefix, never an error; a longer file
    # never reads fewer rows; and every row is recovered by some cut before the end (a reader
    # that gave up on any torn file would read no rows at all).
    seen = []
    for cut in [*range(0, len(data), 16), len(data) - 3]:
        full.write_bytes(data[:cut])
        epochs = [h["epoch"] for h in read_run(full).history] if cut >= 4 else []
        assert epochs == list(range(1, len(epochs) + 1)), (cut, epochs)
        assert not seen or len(epochs) >= seen[-1], (cut, epochs, seen[-1])
        seen.append(len(epochs))
    assert set(seen) == {0, 1, 2, 3, 4, 5} and seen[-1] == 5


@pytest.mark.wandb_offline
def test_resume_resends_the_rows_a_killed_driver_lost_for_finished_trials(
    finished_search, local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial that ended before the driver was killed never starts again on --resume; if W&B
    lost its rows with the driver, the resumed session resends them from Ray's result.json.

    The shared finished search (offline runs), copied: one searched trial's run files cut to
    what a SIGKILL of W&B's buffers leaves, then `--resume` of the copy."""
    experiment = finished_search.copy_to(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    table = pd.read_parquet(experiment / "trials.parquet")
    lost = table.loc[table["role"] == "search", "trial_id"].iloc[0]
    kept = table.loc[table["trial_id"] != lost, "trial_id"]
    for f in run_files(experiment / "wandb", lost):
        f.write_bytes(f.read_bytes()[:7])
    before = {t: run_files(experiment / "wandb", t) for t in kept}
    args = ["--storage-path", str(tmp_path), "--name", experiment.name]
    assert main(["search", *args, "--resume"]) == 0
    after = pd.read_parquet(experiment / "trials.parquet")
    assert sorted(after["trial_id"]) == sorted(table["trial_id"])  # nothing ran again
    for _, row in table.iterrows():
        files = run_files(experiment / "wandb", row["trial_id"])
        epochs = [h["epoch"] for f in files for h in read_run(f).history]
        assert epochs == list(range(1, row["epochs_planned"] + 1)), (row["trial_id"], epochs)
        if row["trial_id"] != lost:
            assert files == before[row["trial_id"]]  # complete runs are left alone


def test_reported_rows_skip_a_torn_tail(tmp_path: Path) -> None:
    """A SIGKILL can cut result.json mid-line: the resume backfill reads what is whole."""
    from types import SimpleNamespace

    import pyarrow.fs

    (tmp_path / "result.json").write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epoch": 3, "val_acc')
    trial = SimpleNamespace(
        path=str(tmp_path), storage=SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem())
    )
    assert [r["epoch"] for r in reported_results(trial)] == [1, 2]
    assert last_reported_epoch(trial) == 2
    assert (
        reported_results(SimpleNamespace(path=str(tmp_path / "none"), storage=trial.storage)) == []
    )


# A hub's process as Ray ends it: put a trial's rows and its end, close the hub, then what
# `ray.kill` does (SIGKILL to the worker's child processes, W&B's service among them, then to
# the worker). It prints how many W&B service processes were still running after `close`.
_HUB_KILLED_AFTER_CLOSE = """
import os, signal, sys
import psutil
from ray.air.integrations.wandb import _QueueItem
from tune_app.wandb_log import _WandbHub
d = sys.argv[1]
hub = _WandbHub("offline", d)
start = {"init": {"id": "whole1", "project": "p", "group": "g", "mode": "offline", "dir": d},
         "logdir": d, "exclude": [], "to_config": []}
for epoch in (1, 2):
    hub.put("whole1", (_QueueItem.RESULT, {"training_iteration": epoch, "epoch": epoch}), start)
hub.put("whole1", (_QueueItem.END, None), start)
hub.close()
children = psutil.Process().children(recursive=True)
print(sum("wandb-core" in " ".join(c.cmdline()) for c in children), flush=True)
for c in children:
    c.kill()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_closed_hub_leaves_w_and_b_nothing_to_write(tmp_path: Path) -> None:
    """Ray kills the hub right after `close`, and its W&B service with it (SIGKILL to the
    worker's children): `close` must return only once W&B's service has written every run and
    exited. A search on a busy machine once left a run file with no record at all (the service
    had not yet handled the run's finish when the kill came)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", _HUB_KILLED_AFTER_CLOSE, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert done.stdout.split() == ["0"], done.stdout  # no W&B service left running
    (path,) = run_files(tmp_path / "wandb", "whole1")
    run = read_run(path)
    assert run.run_id == "whole1" and run.group == "g" and run.finished
    assert [h["epoch"] for h in run.history] == [1, 2]


def test_a_hub_owns_its_wandb_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub started by a Ray whose starter had used W&B (a notebook) inherits WANDB_SERVICE:
    it must start its own service, or a killed hub's runs stay open in the shared one and the
    restarted hub cannot reopen them ("run ID is in use", seen when a test process had used W&B
    before starting Ray)."""
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_SILENT", "WANDB_START_METHOD"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored after the test
    monkeypatch.setenv("WANDB_SERVICE", "2-1234-tcp-localhost-5678")
    _WandbHub("offline", str(tmp_path))
    assert "WANDB_SERVICE" not in os.environ


@pytest.mark.wandb_offline
def test_a_restarted_hub_reopens_the_trials_run_for_the_rows_that_follow(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The logging actor dies mid-trial (OOM, a crash in W&B): Ray restarts it, and the rows
    after the restart land in the same trial's run (same id), not nowhere."""
    from ray.air.integrations.wandb import _QueueItem

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = TrialLogger(fixed={}, experiment=tmp_path, mode="offline", project="p", group="g")
    trial = type("Trial", (), {"trial_id": "hub1", "local_path": str(tmp_path / "hub1")})()
    logger._start_logging_actor(trial, [], id="hub1", name="mixtraining-hub1", resume="allow",
                                project="p", group="g", config={})  # fmt: skip
    queue, hub = logger._trial_queues[trial], logger._hub

    def row(epoch: int) -> tuple[object, dict]:
        return _QueueItem.RESULT, {"training_iteration": epoch, "epoch": epoch, "loss": 1 / epoch}

    ray = local_ray
    ray.get([queue.put(row(e)) for e in (1, 2)])
    pid = ray.get(hub.__ray_call__.remote(lambda _: os.getpid()))
    ray.kill(hub, no_restart=False)  # Ray restarts it (max_restarts=-1); same handle
    # The kill is asynchronous: wait for the new process, or row 3 may die with the old one.
    while ray.get(hub.__ray_call__.remote(lambda _: os.getpid()), timeout=120) == pid:
        time.sleep(0.1)
    ray.get([queue.put(row(e)) for e in (3, 4)], timeout=120)
    ray.get(queue.put((_QueueItem.END, None)), timeout=120)
    logger.close_hub()
    files = run_files(tmp_path / "wandb", "hub1")
    runs = [read_run(f) for f in files]
    epochs = [[h["epoch"] for h in r.history] for r in runs]
    # The restarted hub's run (same id, same group) holds every row sent after the restart.
    assert [3, 4] in epochs, epochs
    (restarted,) = [r for r, e in zip(runs, epochs, strict=True) if e == [3, 4]]
    assert restarted.run_id == "hub1" and restarted.group == "g"
    # The killed process's file holds what W&B had written before the kill (here often
    # nothing); the rest is resent only by `--resume` (its own test above).
    assert len(files) == 2 and [e for e in epochs if e != [3, 4]][0] in ([], [1], [1, 2])
