"""Checkpoints load as tensors and plain values only: a crafted file never runs its code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from ray import tune

from tests.support import TINY_RUN
from trainers.pipeline import STATE_VERSION
from tune_app import trial
from tune_app.checkpoints import CheckpointError
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
