"""W&B logging, offline: one run per trial with the pinned history, config and no secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SPACE

from trainers import TrialConfig
from tune_app.cli import main
from tune_app.wandb_log import has_credentials, resolve_mode
from tune_app.wandb_records import read_run, run_files

PINNED = {
    "epoch",
    "phase",
    "loss_ssl",
    "loss_sl",
    "val_accuracy",
    "train_latency_s",
    "train_gflops",
    "images_per_s",
}
FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
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


def test_offline_search_logs_every_trial_and_never_the_key(
    local_ray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    # A (fake) key makes the default mode try online; W&B cannot be reached from here, so the
    # search must say so once and log offline instead.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    space = {
        **SPACE,
        "search": {"sampler": "random", "num_samples": 2, "seed": 0},
        "wandb": {"project": "tune-app-test", "tags": ["ci"]},
    }
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(space))
    storage = tmp_path / "exp"
    assert (
        main(["search", "--space", str(path), "--storage-path", str(storage), "--name", "w"]) == 0
    )
    err = capsys.readouterr().err
    assert "logging offline" in err and "wandb sync" in err
    experiment = storage / "w"
    table = pd.read_parquet(experiment / "trials.parquet")
    assert len(table) == 4
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
                "val_accuracy",
                "train_latency_s",
                "train_gflops",
            }
            assert h["phase"] in ("ssl", "mix", "sl")
        assert run.summary["test_accuracy"] == pytest.approx(row["test_accuracy"])
        expected = TrialConfig.from_dict({k: run.config[k] for k in TrialConfig().to_dict()})
        assert expected.pipeline == row["pipeline"] and expected.seed == row["seed"]
        if row["pipeline"] == "mixtraining":
            assert expected.alpha == pytest.approx(row["alpha"])
            assert expected.rho == pytest.approx(row["rho"])
    sync = subprocess.run(
        [
            str(Path(__file__).parents[1] / ".venv/bin/wandb"),
            "sync",
            "--dry-run",
            str(experiment / "wandb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sync.returncode == 0, sync.stderr
    for f in experiment.rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f"API key written to {f}"
