"""benchmarks/same_trials.py: two searches' trials compared with timings left out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.same_trials import main


def table(**changes: list) -> pd.DataFrame:
    rows = {
        "trial_id": ["a1", "b2"],
        "role": ["baseline", "search"],
        "pipeline": ["sl", "mixtraining"],
        "seed": [0, 0],
        "config_id": ["c1", "c2"],
        "alpha": [None, 0.5],
        "betas": [[0.9, 0.95], [0.9, 0.95]],
        "val_accuracy": [0.5, 0.6],
        "train_latency_s": [3.0, 2.0],
    }
    return pd.DataFrame({**rows, **changes})


def test_new_ids_and_other_timings_in_another_row_order_are_the_same_trials(tmp_path: Path):
    table().to_parquet(tmp_path / "a.parquet")
    other = table(trial_id=["x9", "y8"], train_latency_s=[3.3, 1.9]).iloc[::-1]
    other.to_parquet(tmp_path / "b.parquet")
    assert main([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]) == 0


def test_a_changed_result_is_named_with_its_trial(tmp_path: Path, capsys):
    table().to_parquet(tmp_path / "a.parquet")
    table(val_accuracy=[0.5, 0.61]).to_parquet(tmp_path / "b.parquet")
    assert main([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]) == 1
    out = capsys.readouterr().out
    assert "role=search, pipeline=mixtraining, seed=0, config_id=c2: val_accuracy" in out


def test_a_missing_file_exits_2(tmp_path: Path):
    assert main([str(tmp_path / "none.parquet"), str(tmp_path / "none.parquet")]) == 2
