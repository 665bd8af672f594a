"""Checkpoints load as tensors and plain values only: a crafted file never runs its code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from ray import tune

from analysis.load import read_results
from tests.support import TINY_RUN
from trainers.pipeline import STATE_VERSION
from tune_app import trial
from tune_app.checkpoints import CheckpointError, put_back_deleted_checkpoints, recorded_epoch
from tune_app.cli import main
from tune_app.train import RunFolder


class Payload:
    """Unpickling this calls `open(marker, "w")`: the file appears iff the payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_state(marker: Path) -> dict:
    """Looks like our checkpoint at the top level; one value is the payload."""
    return {
        "version": STATE_VERSION,
        "config": {},
        "epoch": 1,
        "model": {},
        "history": [Payload(marker)],
        "rng": {},
    }


def write_config(tmp_path: Path, values: dict) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_train_resume_refuses_a_crafted_checkpoint_without_running_it(
    tmp_path: Path, capsys
) -> None:
    out, marker = tmp_path / "run", tmp_path / "pwned"
    out.mkdir()
    torch.save(crafted_state(marker), out / "checkpoint.pt")
    cfg = write_config(tmp_path, TINY_RUN)
    assert main(["train", "--config", cfg, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert str(out / "checkpoint.pt") in err and "Traceback" not in err
    assert not marker.exists()


def test_trial_state_load_refuses_a_crafted_checkpoint(tmp_path: Path, monkeypatch) -> None:
    marker, folder = tmp_path / "pwned", tmp_path / "ckpt"
    folder.mkdir()
    torch.save(crafted_state(marker), folder / trial.STATE_FILE)
    checkpoint = tune.Checkpoint.from_directory(str(folder))
    monkeypatch.setattr(trial.tune, "get_checkpoint", lambda: checkpoint)
    with pytest.raises(CheckpointError, match=trial.STATE_FILE):
        trial.restored_state()
    assert not marker.exists()


def test_a_checkpoint_ray_deleted_before_the_kill_is_put_back_with_the_epoch_to_report_from(
    finished_search, tmp_path: Path, monkeypatch
) -> None:
    """The snapshot names checkpoint N; Ray had registered N+1 (deleting N) and the driver was
    killed before the next snapshot. A newer, half-written N+2 is never chosen. Here in a moved
    copy of a finished search, as a user's resume of a copied folder would meet it."""
    experiment = finished_search.copy_to(tmp_path / "moved")
    first, second, third = sorted(p.parent for p in experiment.glob("*/checkpoint_*"))[:3]
    running(experiment, {first.name, second.name})  # as the killed driver's snapshot left them
    (named,) = first.glob("checkpoint_*")
    index = int(named.name.rpartition("_")[2])
    state = (named / trial.STATE_FILE).read_bytes()
    replacing, partial = (first / f"checkpoint_{i:06d}" for i in (index + 1, index + 2))
    named.rename(replacing)
    partial.mkdir()
    (partial / trial.STATE_FILE).write_bytes(state[: len(state) // 2])
    rows = (first / "result.json").read_text().splitlines()
    last = json.loads(rows[-1])["epoch"]  # the named checkpoint's epoch
    # a row after it (N+1's, where a snapshot came between its result and its save)
    (first / "result.json").write_text("\n".join([*rows, json.dumps({"epoch": last + 1})]))
    for gone in [*second.glob("checkpoint_*"), *third.glob("checkpoint_*")]:
        shutil.rmtree(gone)  # and a trial with no checkpoint left at all; one that had ended

    said = put_back_deleted_checkpoints(str(experiment))
    assert len(said) == 2, said
    put_back = next(line for line in said if first.name in line)
    assert f"resuming from {replacing.name}" in put_back and f"after {last}" in put_back
    # the rows after the named checkpoint's epoch go: the trial reports them again
    epochs = [row["epoch"] for row in read_results(first / "result.json")]
    assert epochs == [json.loads(row)["epoch"] for row in rows]
    lost = next(line for line in said if second.name in line)
    assert "no newer one is left" in lost
    assert (named / trial.STATE_FILE).read_bytes() == state
    assert not replacing.exists() and partial.exists()  # Ray writes the next one in its place
    assert recorded_epoch(named) == last
    assert not list(first.glob("*.put-back"))
    assert put_back_deleted_checkpoints(str(experiment)) == [lost]  # done once

    # The trial Ray restores from it: its state, and the epoch its rows are reported again after
    checkpoint = tune.Checkpoint.from_directory(str(named))
    monkeypatch.setattr(trial.tune, "get_checkpoint", lambda: checkpoint)
    restored, recorded = trial.restored_state()
    assert restored is not None and restored["epoch"] == last and recorded == last
    (other,) = sorted(experiment.glob("*/checkpoint_*/"))[-1:]
    assert recorded_epoch(other) is None  # one Ray restores as it wrote it
    assert put_back_deleted_checkpoints(str(tmp_path)) == []  # no snapshot: Ray's error stands


def running(experiment: Path, trial_ids: set[str]) -> None:
    """Mark these trials RUNNING in the experiment's Ray snapshot."""
    (snapshot,) = experiment.glob("experiment_state-*.json")
    state = json.loads(snapshot.read_text())
    for entry in state["trial_data"]:
        trial_state = json.loads(entry[0])  # Ray keeps each trial's state as a JSON string
        if trial_state["trial_id"] in trial_ids:
            entry[0] = json.dumps({**trial_state, "status": "RUNNING"})
    snapshot.write_text(json.dumps(state))


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.parametrize(
    "damage", ["truncated", "text", "foreign_dict", "other_version", "wrong_types"]
)
def test_a_damaged_checkpoint_is_bad_input_naming_the_file(
    tmp_path: Path, capsys, damage: str
) -> None:
    cfg = write_config(tmp_path, {**TINY_RUN, "pipeline": "sl", "epochs_sl": 1})
    out = tmp_path / "run"
    assert main(["train", "--config", cfg, "--out", str(out)]) == 0
    path = out / "checkpoint.pt"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "text":
        path.write_text("not a checkpoint\n")
    elif damage == "foreign_dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif damage == "wrong_types":  # every key present, but not what a checkpoint holds
        state = torch.load(path, weights_only=True)
        torch.save({**state, "config": 1, "history": "x"}, path)
    else:
        state = torch.load(path, weights_only=True)
        torch.save({**state, "version": 1}, path)
    capsys.readouterr()
    assert main(["train", "--config", cfg, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"tune-app: error: --resume: {path}" in err and "Traceback" not in err


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_an_interrupted_run_resumes_bit_for_bit(tmp_path: Path, capsys, monkeypatch) -> None:
    """Stop after epoch 2 of 3, resume: the same weights and metrics as a run never stopped."""
    cfg = write_config(tmp_path, TINY_RUN)
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "whole")]) == 0
    report = RunFolder.report

    def stop_after_two(self, metrics, state):
        report(self, metrics, state)
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RunFolder, "report", stop_after_two)
        assert main(["train", "--config", cfg, "--out", str(tmp_path / "cut")]) == 130
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    whole, cut = (
        torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("whole", "cut")
    )
    assert whole["model"].keys() == cut["model"].keys()
    assert all(torch.equal(whole["model"][k], cut["model"][k]) for k in whole["model"])
    # measured seconds (compute_s too), and calibrated_latency_s: each run folder calibrates its
    # own step costs (a resumed run reads calibration.json again: tests/trainers/test_calibrate.py)
    timing = ("train_latency_s", "images_per_s", "calibrated_latency_s", "compute_s")
    rows = [
        [
            {k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (tmp_path / d / "history.jsonl").read_text().splitlines()
        ]
        for d in ("whole", "cut")
    ]
    assert rows[0] == rows[1] and len(rows[0]) == 3
