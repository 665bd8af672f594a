"""Search economy: no validation pass in SSL epochs, and every consumer of a missing value."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml

from search_spaces import load_space
from tests.support import SPACE, TINY_RUN
from trainers import TrialConfig, run
from trainers.pipeline import Trainer
from tune_app.searcher import build_searcher
from tune_app.train import progress_line


def run_rows(config: TrialConfig) -> tuple[list[dict], dict, torch.Tensor]:
    """Every epoch's metrics, the final state and the global RNG state after the run."""
    rows, states = [], []
    run(config, lambda m, s: (rows.append(m), states.append(s)))
    return rows, states[-1], torch.get_rng_state()


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.parametrize("pipeline", ["mixtraining", "ssl_sl"])
def test_skipping_ssl_validation_changes_no_result(pipeline: str, monkeypatch) -> None:
    """Same seed, validation in SSL epochs on or off: the same final metrics and weights, and
    the evaluation consumed no random numbers (the RNG ends in the same state)."""
    config = TrialConfig.from_dict({**TINY_RUN, "pipeline": pipeline, "epochs_ssl": 3, "seed": 5})
    skipped, s_state, s_rng = run_rows(config)
    monkeypatch.setattr(Trainer, "_validate_ssl", True)
    validated, v_state, v_rng = run_rows(config)
    ssl = [r["epoch"] for r in skipped if r["phase"] == "ssl"]
    assert ssl and all(skipped[e - 1]["val_accuracy"] is None for e in ssl)
    assert all(validated[e - 1]["val_accuracy"] is not None for e in ssl)
    for a, b in zip(skipped, validated, strict=True):
        if a["phase"] != "ssl":
            assert a["val_accuracy"] == b["val_accuracy"]
        assert a["loss_ssl"] == b["loss_ssl"] and a["loss_sl"] == b["loss_sl"]
    assert skipped[-1]["test_accuracy"] == validated[-1]["test_accuracy"]
    assert torch.equal(s_rng, v_rng)
    assert s_state["rng"]["data"].equal(v_state["rng"]["data"])
    for name, tensor in s_state["model"].items():
        assert torch.equal(tensor, v_state["model"][name]), name


def test_progress_line_prints_a_dash_for_a_missing_accuracy() -> None:
    row = {
        "epoch": 1,
        "phase": "ssl",
        "loss_ssl": 0.5,
        "loss_sl": None,
        "val_accuracy": None,
        "train_latency_s": 1.0,
        "images_per_s": 100.0,
    }
    assert "val_acc - " in progress_line(row, 4, 2.0)
    assert "val_acc 0.5000 " in progress_line({**row, "val_accuracy": 0.5}, 4, 2.0)


def test_trial_stopped_without_an_objective_value_is_pruned_in_optuna(tmp_path: Path) -> None:
    """A trial stopped in an SSL epoch has no accuracy yet: Optuna must see it PRUNED, not be
    told a value it cannot store (which leaves the trial RUNNING forever)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    space = load_space(str(path), {"baselines.pipelines": []})
    searcher = build_searcher(space, tmp_path, "s")
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"val_accuracy": None, "train_latency_s": 3.0})
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.values is None


def test_search_trials_reuse_a_shared_ssl_prefix(local_ray, tmp_path: Path, capsys) -> None:
    """Two trials with the same SSL settings (rho fixed): the second takes the first's SSL
    epoch from the experiment's cache, still reports every epoch, and the summary counts it."""
    import pandas as pd

    from analysis.load import read_results
    from tune_app.cli import main

    space = {
        **SPACE,
        "parameters": {**SPACE["parameters"], "rho": {"value": 0.5}},  # ssl, mix, sl
        "search": {**SPACE["search"], "num_samples": 2, "max_concurrent": 1},
        "baselines": {"pipelines": []},
    }
    path = tmp_path / "reuse.yaml"
    path.write_text(yaml.safe_dump(space))
    argv = ["search", "--space", str(path), "--storage-path", str(tmp_path), "--name", "r"]
    assert main([*argv, "--wandb", "disabled"]) == 0
    experiment = tmp_path / "r"
    table = pd.read_parquet(experiment / "trials.parquet").sort_values("ssl_epochs_reused")
    assert table["complete"].all() and list(table["ssl_epochs_reused"]) == [0, 1]
    first, second = table.to_dict("records")
    assert first["compute_s"] == pytest.approx(first["train_latency_s"])
    assert 0 < second["compute_s"] < second["train_latency_s"]
    rows = read_results(experiment / second["trial_id"] / "result.json")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[0]["val_accuracy"] is None
    assert any((experiment / "ssl_cache").rglob("epoch-1.pt"))
    assert "SSL epochs reused from the cache: 1" in capsys.readouterr().err
