"""benchmarks/replication.py: per-configuration comparison of two runs of one search."""

from __future__ import annotations

import pandas as pd

from benchmarks.replication import compare, per_config, verdict_sets


def trials(calibrated: float, measured: float) -> pd.DataFrame:
    rows = [
        ("c1", "mixtraining", "search", 0, calibrated, measured, 0.70),
        ("c1", "mixtraining", "confirm", 1, calibrated, measured + 2, 0.72),
        ("b1", "ssl_sl", "baseline", 0, 50.0, 51.0, 0.69),
    ]
    cols = ["config_id", "pipeline", "role", "seed", "calibrated_latency_s",
            "train_latency_s", "val_accuracy"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    frame["complete"] = True
    return frame


def test_configurations_are_grouped_and_compared_within_the_tolerance() -> None:
    a = per_config(trials(40.0, 44.0))
    assert a.loc["c1", "seeds"] == 2 and a.loc["c1", "role"] == "confirm+search"
    assert a.loc["c1", "measured"] == 45.0
    same = compare(a, per_config(trials(41.9, 80.0)))  # 4.75% apart: within 5%
    assert same["within"].all()
    off = compare(a, per_config(trials(42.1, 44.0)))  # 5.25% apart
    assert not off.loc["c1", "within"] and off.loc["b1", "within"]


def test_verdict_sets_read_the_configuration_level_answers() -> None:
    summary = {
        "confirmed_dominance": {"ssl_sl": ["c2", "c1"], "sl": []},
        "verdict": {"configurations": [
            {"config_id": "c1", "on_front": True, "knee": False},
            {"config_id": "c2", "on_front": True, "knee": True},
            {"config_id": "c3", "on_front": False, "knee": False},
        ]},
    }  # fmt: skip
    got = verdict_sets(summary)
    assert got == {"claims vs SSL+SL": ["c1", "c2"], "claims vs SL": [], "front": ["c1", "c2"],
                   "knee": ["c2"]}  # fmt: skip
