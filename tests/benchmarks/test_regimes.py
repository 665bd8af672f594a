"""benchmarks/regimes.py: the regime list, SL runs shared between regimes, the table, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from benchmarks import regimes as rg
from search_spaces import load_space
from trainers import TrialConfig


def test_every_regime_is_a_valid_config_and_changes_only_the_data_regime() -> None:
    same = load_space("vit_mix_same").trainer
    for regime in rg.REGIMES:
        for pipeline in rg.PIPELINES:
            TrialConfig.from_dict(rg.settings(regime, pipeline, 0))  # raises when invalid
        changed = {k for k, v in rg.settings(regime, "sl", 0).items() if same.get(k, v) != v}
        assert changed <= {
            "ssl_source",
            "unlabeled_fraction",
            "labeled_fraction",
            "ssl_schedule",
            "epochs_ssl",
            "epochs_sl",
        }, regime
    assert rg.settings("same 4+4", "sl", 0) == {
        **{k: same[k] for k in rg.BASE if k in same},
        "num_threads": 1,
        "ssl_source": "same",
        "epochs_ssl": 4,
        "epochs_sl": 4,
        "pipeline": "sl",
        "seed": 0,
    }


def test_the_default_space_is_a_measured_regime() -> None:
    """vit_mix's data regime is one the table measured (its SSL+SL gap is recorded there)."""
    trainer = load_space("vit_mix").trainer
    measured = [
        r
        for r in rg.REGIMES
        if all(trainer.get(k) == v for k, v in rg.settings(r, "ssl_sl", 0).items() if k in trainer)
    ]
    assert measured == ["5% labels, all 25% 4+4"]


def test_an_sl_run_stands_for_another_only_when_it_trains_identically() -> None:
    doc = {"runs": {"same 4+4/sl/0": {"test_accuracy": 0.6}}}
    assert rg.twin(doc, "all 25% 4+4", "sl", 0) == "same 4+4/sl/0"  # only SSL settings differ
    assert rg.twin(doc, "all 25% 4+4", "sl", 1) is None  # another seed
    assert rg.twin(doc, "5% labels, all 25% 4+4", "sl", 0) is None  # other labels
    assert rg.twin(doc, "all 25% 4+4", "ssl_sl", 0) is None  # reads the SSL settings
    copied = {"runs": {"all 50% 4+4/sl/0": {"same_as": "x"}}}
    assert rg.twin(copied, "all 25% 4+4", "sl", 0) is None  # a copy is never the source


def fake_run(acc: float, seconds: float, phases: dict[str, float]) -> dict[str, Any]:
    return {
        "val_accuracy": acc,
        "test_accuracy": acc,
        "train_latency_s": seconds,
        "phase_s": phases,
        "wall_s": seconds,
    }


def test_table_gap_p_and_search_cost() -> None:
    regime = "5% labels, all 25% 4+4"
    sl, ssl_sl, mix = [0.50, 0.52, 0.51], [0.60, 0.63, 0.61], [0.55, 0.56, 0.58]
    runs = {}
    for seed in range(3):
        runs[f"{regime}/sl/{seed}"] = fake_run(sl[seed], 10.0, {"sl": 10.0})
        runs[f"{regime}/ssl_sl/{seed}"] = fake_run(ssl_sl[seed], 50.0, {"ssl": 40.0, "sl": 10.0})
        mix_phases = {"ssl": 20.0, "mix": 8.0, "sl": 6.0}
        runs[f"{regime}/mixtraining/{seed}"] = fake_run(mix[seed], 34.0, mix_phases)
    text = rg.table({"runs": runs}, [0, 1, 2])
    row = next(line for line in text.splitlines() if line.startswith(f"| {regime} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    p = stats.ttest_ind(ssl_sl, sl, equal_var=False).pvalue
    assert cells[1] == "51.0 ± 1.0" and cells[2] == "61.3 ± 1.5"
    assert cells[4] == f"+10.3 (p {p:.2g})"
    # 3 SL + 3 SSL+SL, and 18 MixTraining trials paying only MIX + SL (budget: SSL is shared)
    assert cells[8] == f"{3 * 10 + 3 * 50 + 18 * 14:.0f}"
    assert "same 4+4" not in text  # a regime without runs has no row


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_tiny_run_trains_each_run_once_and_resumes(tmp_path: Path, monkeypatch, capsys) -> None:
    tiny = {
        "model": "vit_micro",
        "dataset": "digits",
        "labeled_fraction": 0.3,
        "batch_size": 32,
        "num_threads": 1,
    }
    semi = {"ssl_source": "all", "ssl_schedule": "budget", "epochs_ssl": 2, "epochs_sl": 2}
    monkeypatch.setattr(rg, "BASE", tiny)
    monkeypatch.setattr(
        rg,
        "REGIMES",
        {"a": {**semi, "unlabeled_fraction": 0.5}, "b": {**semi, "unlabeled_fraction": 1.0}},
    )
    results = tmp_path / "r.json"
    assert rg.main(["--results", str(results), "--seeds", "0"]) == 0
    doc = json.loads(results.read_text())
    assert len(doc["runs"]) == 6 and doc["meta"]["finished"]
    # b's SL runs are a's (they differ only in SSL settings): trained once
    assert doc["runs"]["b/sl/0"]["same_as"] == "a/sl/0"
    assert doc["runs"]["b/sl/0"]["test_accuracy"] == doc["runs"]["a/sl/0"]["test_accuracy"]
    assert doc["runs"]["a/ssl_sl/0"]["phase_s"].keys() == {"ssl", "sl"}
    assert doc["runs"]["b/mixtraining/0"]["phase_s"].keys() == {"ssl", "mix", "sl"}
    out = capsys.readouterr().out
    assert "| a |" in out and "| b |" in out
    before = results.read_text()
    assert rg.main(["--results", str(results), "--seeds", "0"]) == 0  # nothing left
    assert json.loads(results.read_text())["runs"] == json.loads(before)["runs"]
    assert "[1/" not in capsys.readouterr().out


@pytest.mark.parametrize("regime", ["no such regime"])
def test_an_unknown_regime_exits_2(regime: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        rg.main(["--results", str(tmp_path / "r.json"), "--regimes", regime])
    assert stop.value.code == 2
