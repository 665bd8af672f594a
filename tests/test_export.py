"""`tune-app export`: which trial is chosen, the YAML is a runnable standalone config, bad
selections exit 2; and one end-to-end run: search -> analyze -> export -> train --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SPACE as HELPER_SPACE
from test_analysis import FINISHED, FRONT_IDS, config_of, write_experiment, write_ray_experiment

from tune_app.cli import main
from tune_app.train import load_config

KNOBS_OF = {r["trial_id"]: {k: r[k] for k in ("alpha", "rho", "lam", "anneal")} for r in FINISHED}


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    return write_experiment(tmp_path / "finished", FINISHED)


@pytest.mark.parametrize(
    ("select", "filters", "expected"),
    [
        ("knee", [], "m1"),
        ("max-accuracy", [], "m3"),
        ("min-latency", [], "m6"),
        ("max-accuracy", ["--max-latency", "15"], "m2"),  # m2 and m5 tie: the first in order
        ("min-latency", ["--min-accuracy", "0.84"], "m2"),
        ("knee", ["--min-accuracy", "0.8"], "m2"),  # knee of m1, m2, m5, m3
    ],
)
def test_export_writes_the_selected_trial_as_a_runnable_config(
    finished: Path, tmp_path: Path, select: str, filters: list[str], expected: str, capsys
) -> None:
    out = tmp_path / "best.yaml"
    assert main(["export", str(finished), "--select", select, *filters, "--out", str(out)]) == 0
    assert f"trial {expected}:" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("# Exported by `tune-app export`")
    assert f"trial {expected} (mixtraining, seed 0)" in text and str(finished) in text
    settings = yaml.safe_load(text)
    assert "num_threads" not in settings
    expected_config = config_of(**KNOBS_OF[expected]).replace(num_threads=0)
    assert load_config(str(out)) == expected_config
    assert set(settings) == set(expected_config.to_dict()) - {"num_threads"}


def test_all_pareto_writes_one_file_per_front_trial(finished: Path, tmp_path: Path, capsys):
    out = tmp_path / "configs" / "front.yaml"
    assert main(["export", str(finished), "--select", "all-pareto", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == sorted(f"front-{tid}.yaml" for tid in FRONT_IDS)
    listed = capsys.readouterr().out
    for tid in FRONT_IDS:
        assert f"front-{tid}.yaml" in listed
        config = load_config(str(out.parent / f"front-{tid}.yaml"))
        assert config == config_of(**KNOBS_OF[tid]).replace(num_threads=0)


def test_a_filter_matching_nothing_exits_2_naming_the_best_available(
    finished: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "best.yaml"
    args = ["export", str(finished), "--select", "knee", "--out", str(out)]
    assert main([*args, "--max-latency", "5", "--min-accuracy", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "train_latency_s <= 5" in err
    assert "fastest: m6 (8.00 s" in err and "most accurate: m3" in err
    assert not out.exists()


def test_export_of_a_failed_only_experiment_exits_2(tmp_path: Path, capsys) -> None:
    rows = [r for r in FINISHED if r["trial_id"] in ("e1", "u1")]
    exp = write_experiment(tmp_path / "failed", rows)
    assert main(["export", str(exp), "--select", "knee", "--out", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no complete MixTraining trial (1 errored, 1 unfinished)" in err
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--select", "best"],  # not a selection
        ["--select", "knee", "--max-latency", "fast"],
        ["--select", "knee"],  # --out missing
    ],
)
def test_bad_export_arguments_exit_2(finished: Path, tmp_path: Path, args: list[str]) -> None:
    out = ["--out", str(tmp_path / "x.yaml")] if args != ["--select", "knee"] else []
    assert main(["export", str(finished), *args, *out]) == 2
    assert not (tmp_path / "x.yaml").exists()


def test_export_from_ray_files_fills_the_space_settings(tmp_path: Path) -> None:
    exp = write_ray_experiment(tmp_path / "partial", with_state=True)
    out = tmp_path / "r1.yaml"
    assert main(["export", str(exp), "--select", "knee", "--out", str(out)]) == 0
    knobs = {"alpha": 0.3, "rho": 0.4, "lam": 0.8, "anneal": "cosine"}
    assert load_config(str(out)) == config_of(**knobs).replace(num_threads=0)


# ---------------------------------------------------------------- end to end with a real Ray

# The shared tiny search space, with two searched trials (the Ray fixture is in conftest.py).
SPACE = {**HELPER_SPACE, "search": {**HELPER_SPACE["search"], "num_samples": 2}}


def test_search_analyze_export_train_reproduces_the_trial(local_ray, tmp_path: Path, capsys):
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    storage = tmp_path / "exp"
    # W&B plays no part in what this test checks: disabled, whatever the developer's login.
    search = ["search", "--space", str(space), "--storage-path", str(storage), "--name", "e"]
    assert main([*search, "--wandb", "disabled"]) == 0
    exp = storage / "e"
    assert main(["analyze", str(exp)]) == 0
    assert (exp / "analysis" / "pareto.png").stat().st_size > 0
    knee_id = json.loads((exp / "analysis" / "summary.json").read_text())["knee"]["trial_id"]
    best = tmp_path / "best.yaml"
    assert main(["export", str(exp), "--select", "knee", "--out", str(best)]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(best), "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)["config"]
    row = pd.read_parquet(exp / "trials.parquet").set_index("trial_id").loc[knee_id]
    assert printed == {**trial_config_dict(row), "num_threads": 0}
    # What Ray actually ran (the searcher's suggestion), independent of trials.parquet:
    suggested = json.loads((exp / knee_id / "params.json").read_text())
    assert {k: printed[k] for k in suggested} == suggested


def trial_config_dict(row: pd.Series) -> dict:
    """The trial's TrialConfig as trials.parquet recorded it (every field is a column)."""
    from dataclasses import fields

    from trainers import TrialConfig

    values = {f.name: row[f.name] for f in fields(TrialConfig)}
    values["betas"] = [float(b) for b in values["betas"]]
    plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in values.items()}
    return TrialConfig.from_dict(plain).to_dict()
