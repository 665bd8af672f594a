"""`tune-app export`: which trial is chosen, the YAML is a runnable standalone config, bad
selections exit 2; and one end-to-end run: search -> analyze -> export -> train --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.support import (
    ANALYSIS_SPACE,
    FINISHED,
    FRONT_IDS,
    config_of,
    trial,
    write_experiment,
    write_ray_experiment,
)
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
    printed = capsys.readouterr()
    assert f"settings of seed 0, trial {expected})" in printed.out
    # No configuration ran a second seed: the choice is a single run, and both places say so.
    assert "rests on single runs" in printed.err
    text = out.read_text()
    assert text.startswith("# Exported by `tune-app export`")
    assert f"# settings of seed 0 (trial {expected})" in text and str(finished) in text
    assert "# WARNING: a single run" in text and "front of 5 point(s) over single runs" in text
    settings = yaml.safe_load(text)
    assert "num_threads" not in settings
    expected_config = config_of(**KNOBS_OF[expected]).replace(num_threads=0)
    assert load_config(str(out)) == expected_config
    assert set(settings) == set(expected_config.to_dict()) - {"num_threads"}


def test_all_pareto_writes_one_file_per_front_configuration(
    finished: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "configs" / "front.yaml"
    assert main(["export", str(finished), "--select", "all-pareto", "--out", str(out)]) == 0
    ids = config_ids_of(finished)
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == sorted(f"front-{ids[tid]}.yaml" for tid in FRONT_IDS)
    listed = capsys.readouterr().out
    for tid in FRONT_IDS:
        assert f"front-{ids[tid]}.yaml" in listed
        config = load_config(str(out.parent / f"front-{ids[tid]}.yaml"))
        assert config == config_of(**KNOBS_OF[tid]).replace(num_threads=0)


def config_ids_of(experiment: Path) -> dict[str, str]:
    """trial_id -> config_id, as the analysis groups them."""
    from analysis import analyze_experiment, load_experiment

    done = analyze_experiment(load_experiment(experiment)).done
    return dict(zip(done["trial_id"], done["config_id"], strict=True))


def test_a_filter_matching_nothing_exits_2_naming_the_best_available(
    finished: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "best.yaml"
    args = ["export", str(finished), "--select", "knee", "--out", str(out)]
    assert main([*args, "--max-latency", "5", "--min-accuracy", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "mean train_latency_s <= 5" in err
    assert "fastest: configuration" in err and "(trial m6): train_latency_s 8.00 s" in err
    assert "(trial m3): train_latency_s 20.00 s, val_accuracy 0.9000" in err
    assert not out.exists()


# ------------------------------------------ configurations first: the winner's curse avoided

LUCKY = dict(alpha=0.2, rho=0.6, lam=0.7, anneal="linear")  # best single run, worse mean
STEADY = dict(alpha=0.4, rho=0.6, lam=0.7, anneal="cosine")  # lower best run, better mean
FLUKE = dict(alpha=0.9, rho=0.6, lam=0.7, anneal="none")  # one run only, above both


def confirmed_rows(calibrated: bool = False) -> list[dict]:
    """Two confirmed configurations at equal cost (LUCKY's seed 0 is the best confirmed run,
    STEADY has the better mean), a single-seed fluke, and three seeds of each baseline."""
    rows = [
        trial("l0", 0.90, 14.0, seed=0, **LUCKY),
        trial("l1", 0.80, 14.0, seed=1, **LUCKY),
        trial("l2", 0.79, 14.0, seed=2, **LUCKY),
        trial("s0", 0.85, 14.0, seed=0, **STEADY),
        trial("s1", 0.86, 14.0, seed=1, **STEADY),
        trial("s2", 0.84, 14.0, seed=2, **STEADY),
        trial("f0", 0.95, 14.0, seed=0, **FLUKE),
    ]
    rows += [trial(f"b{k}", 0.70 + 0.01 * k, 9.0, "sl", k) for k in range(3)]
    rows += [trial(f"p{k}", 0.80 + 0.01 * k, 20.0, "ssl_sl", k) for k in range(3)]
    for row in rows:
        row["role"] = "confirm" if row["seed"] and row["pipeline"] == "mixtraining" else "search"
        if calibrated:  # a load-independent cost, below the measured one
            row["calibrated_latency_s"] = row["train_latency_s"] * 0.8
    return rows


CALIBRATED_SPACE = {
    **ANALYSIS_SPACE,
    "objectives": [
        {"metric": "val_accuracy", "goal": "maximize"},
        {"metric": "calibrated_latency_s", "goal": "minimize"},
    ],
}


@pytest.fixture
def confirmed(tmp_path: Path) -> Path:
    return write_experiment(tmp_path / "confirmed", confirmed_rows(True), CALIBRATED_SPACE)


def test_the_knee_headline_summary_and_export_pick_the_better_mean_not_the_lucky_run(
    confirmed: Path, tmp_path: Path, capsys
) -> None:
    ids = config_ids_of(confirmed)
    steady, lucky = ids["s0"], ids["l0"]
    assert main(["analyze", str(confirmed)]) == 0
    out = capsys.readouterr().out
    assert f"knee {steady} (val_accuracy 0.8500 ± 0.0100" in out
    assert "1 single-seed configuration(s) are shown but not chosen from" in out
    summary = json.loads((confirmed / "analysis" / "summary.json").read_text())
    assert summary["choice_basis"] == "configurations"
    knee = summary["knee"]
    assert knee["config_id"] == steady and knee["n"] == 3 and knee["seeds"] == [0, 1, 2]
    assert knee["val_accuracy_mean"] == pytest.approx(0.85)
    assert knee["val_accuracy_std"] == pytest.approx(np.std([0.85, 0.86, 0.84], ddof=1))
    assert knee["calibrated_latency_s_mean"] == pytest.approx(11.2)
    assert [c["config_id"] for c in summary["front"]] == [steady]  # LUCKY's mean is dominated
    report = (confirmed / "analysis" / "report.md").read_text()
    assert f"knee {steady}" in report and f"knee {lucky}" not in report
    for select in ("knee", "max-accuracy", "min-latency", "all-pareto"):
        out_file = tmp_path / select / "best.yaml"
        assert main(["export", str(confirmed), "--select", select, "--out", str(out_file)]) == 0
        written = list(out_file.parent.iterdir())
        assert len(written) == 1 and f"configuration {steady}" in written[0].read_text()
        assert load_config(str(written[0])) == config_of(**STEADY).replace(num_threads=0)
    assert "rests on single runs" not in capsys.readouterr().err


def test_include_unconfirmed_lets_the_single_run_in(confirmed: Path, tmp_path: Path, capsys):
    out = tmp_path / "best.yaml"
    args = ["export", str(confirmed), "--select", "max-accuracy", "--out", str(out)]
    assert main([*args, "--include-unconfirmed"]) == 0
    text = out.read_text()
    assert "settings of seed 0 (trial f0)" in text and "# WARNING: a single run" in text
    assert "single-seed ones included (--include-unconfirmed)" in text
    assert load_config(str(out)) == config_of(**FLUKE).replace(num_threads=0)


def test_export_header_quotes_each_objective_mean_and_std_and_the_seed_written(
    confirmed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "best.yaml"
    assert main(["export", str(confirmed), "--select", "knee", "--out", str(out)]) == 0
    header = [line for line in out.read_text().splitlines() if line.startswith("#")]
    acc_std = np.std([0.85, 0.86, 0.84], ddof=1)
    scores = (
        f"# 3 seed(s) (0, 1, 2): val_accuracy 0.8500 ± {acc_std:.4f}, calibrated_latency_s "
        "11.20 s ± 0.00 s (mean ± sample std over seeds; the space's objectives)"
    )
    assert scores in header
    test_std = np.std([0.84, 0.85, 0.83], ddof=1)  # the helper's test accuracy: val - 0.01
    assert f"# test_accuracy 0.8400 ± {test_std:.4f}: shown, never used to choose" in header
    assert "# settings of seed 0 (trial s0); `--seed S` writes another seed's" in "\n".join(header)
    assert not any("train_latency_s" in line for line in header)  # not what the space optimised
    assert not any("WARNING" in line for line in header)


def test_seeds_of_one_configuration_differ_only_in_the_seed(confirmed: Path, tmp_path: Path):
    texts = {}
    for seed in (0, 1, 2):
        out = tmp_path / f"seed{seed}.yaml"
        args = ["export", str(confirmed), "--select", "knee", "--seed", str(seed)]
        assert main([*args, "--out", str(out)]) == 0
        texts[seed] = yaml.safe_load(out.read_text())
        assert f"# settings of seed {seed} (trial s{seed})" in out.read_text()
    for seed in (1, 2):
        differ = {k for k in texts[0] if texts[0][k] != texts[seed][k]}
        assert differ == {"seed"} and texts[seed]["seed"] == seed


def test_a_seed_the_configuration_lacks_exits_2(confirmed: Path, tmp_path: Path, capsys):
    out = tmp_path / "best.yaml"
    args = ["export", str(confirmed), "--select", "knee", "--seed", "7", "--out", str(out)]
    assert main(args) == 2
    assert "has no complete trial with seed 7; its seeds: 0, 1, 2" in capsys.readouterr().err
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


def test_search_analyze_export_train_reproduces_the_trial(finished_search, tmp_path: Path, capsys):
    exp = finished_search.copy_to(tmp_path)  # analyze writes into it
    assert main(["analyze", str(exp)]) == 0
    assert (exp / "analysis" / "pareto.png").stat().st_size > 0
    knee_id = json.loads((exp / "analysis" / "summary.json").read_text())["knee"]["trial_ids"][0]
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
