"""Orchestration with a real local Ray: no retries for failures that repeat; URI storage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support import SPACE
from tune_app import experiment, orchestrate
from tune_app.cli import main

ONE_TRIAL = {
    **SPACE,
    "search": {"sampler": "random", "num_samples": 1, "max_concurrent": 1, "seed": 0},
    "baselines": {"pipelines": [], "seeds": [0]},
}


def search_args(tmp_path: Path, storage: str, *sets: str) -> list[str]:
    space = tmp_path / "one.yaml"
    space.write_text(yaml.safe_dump(ONE_TRIAL))
    args = ["search", "--space", str(space), "--storage-path", storage, "--name", "r"]
    return [*args, "--wandb", "disabled", *(a for s in sets for a in ("--set", s))]


def test_a_failure_that_would_repeat_is_not_retried(local_ray, tmp_path: Path) -> None:
    """A non-finite loss fails the trial; Ray's retries stop at once instead of training."""
    storage = tmp_path / "exp"
    # lr 1e30 in the MIX and SL phases: epoch 1 (SSL) trains, epoch 2 gives a NaN loss.
    assert main(search_args(tmp_path, str(storage), "trainer.lr_sl=1e30")) == 1
    table = pd.read_parquet(storage / "r" / "trials.parquet")
    assert list(table["status"]) == ["ERROR"] and "non-finite loss" in table["error"][0]
    trial_dir = storage / "r" / table["trial_id"][0]
    attempts = (trial_dir / "error.txt").read_text().split("Failure # ")[1:]
    assert len(attempts) == 1 + orchestrate.MAX_FAILURES  # Ray still counts its retries...
    assert "NonFiniteLossError" in attempts[0]
    assert all("not retried" in a for a in attempts[1:])  # ...which end before training
    epochs = (trial_dir / "result.json").read_text().splitlines()
    assert len(epochs) == 1  # only the SSL epoch before the failure ever reported
    assert not list((storage / "r").rglob("*wandb*"))  # --wandb disabled writes no W&B files


def test_uri_storage_gets_space_yaml_before_the_trials_start(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote experiment is resumable (its space is there) from the search's first moment."""
    monkeypatch.chdir(tmp_path)
    bucket = tmp_path / "bucket"

    def stop_before_trials(*args, **kwargs):
        assert (bucket / "r" / "space.yaml").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "new_phase", stop_before_trials)
    assert main(search_args(tmp_path, f"file://{bucket}")) == 130
    assert (bucket / "r" / "space.yaml").exists()
