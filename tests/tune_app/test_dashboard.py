"""The dashboards: `tune-app dashboard` (optuna-dashboard on optuna.db, checked in headless
Chromium) and the W&B saved view of `tune-app analyze --wandb-workspace` (built offline)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

from analysis import analyze_experiment, load_experiment
from tests.support import FINISHED, ROOT, SPACE, write_experiment
from tune_app.cli import main
from tune_app.dashboard import name_objectives, prepare

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
METRICS = [o["metric"] for o in SPACE["objectives"]]
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def study_experiment(path: Path, named: bool, n_trials: int = 3) -> Path:
    """An experiment folder with space.yaml and an optuna.db like the search writes."""
    path.mkdir(parents=True)
    (path / "space.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    storage = optuna.storages.RDBStorage(f"sqlite:///{path / 'optuna.db'}")
    study = optuna.create_study(
        study_name=path.name, storage=storage, directions=["maximize", "minimize"]
    )
    if named:
        study.set_metric_names(METRICS)
    dist = {"alpha": optuna.distributions.FloatDistribution(0.1, 0.9)}
    for i in range(n_trials):
        trial = optuna.trial.create_trial(
            params={"alpha": 0.2 + 0.1 * i}, distributions=dist, values=[0.70 + 0.01 * i, 10.0 + i]
        )
        study.add_trial(trial)
    return path


def metric_names(path: Path) -> list[str] | None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{path / 'optuna.db'}")
    return optuna.load_study(study_name=path.name, storage=storage).metric_names


def test_unnamed_objectives_get_the_space_names_and_named_ones_are_kept(tmp_path: Path) -> None:
    unnamed = study_experiment(tmp_path / "unnamed", named=False)
    assert metric_names(unnamed) is None
    prepare(unnamed)
    assert metric_names(unnamed) == METRICS
    named = study_experiment(tmp_path / "named", named=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{named / 'optuna.db'}")
    assert name_objectives(storage, ["x", "y"]) == []  # already named: left alone
    assert metric_names(named) == METRICS


def test_dashboard_on_a_corrupt_study_file_exits_2(tmp_path: Path, capsys) -> None:
    exp = study_experiment(tmp_path / "exp", named=True)
    (exp / "optuna.db").write_text("not a database\n")
    assert main(["dashboard", str(exp), "--port", "1"]) == 2
    assert "optuna.db: not an Optuna database" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["folder", "optuna.db", "space.yaml"])
def test_dashboard_bad_input_exits_2(tmp_path: Path, missing: str, capsys) -> None:
    exp = study_experiment(tmp_path / "exp", named=True)
    if missing == "folder":
        exp = tmp_path / "nope"
    else:
        (exp / missing).unlink()
    assert main(["dashboard", str(exp), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert str(exp) in err and (missing == "folder" or missing in err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def chromium_dom(url: str, profile: Path) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync",
             "--virtual-time-budget=20000"]  # fmt: skip  # the page fetches the study, then draws
    run = subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.mark.timeout(300)  # over the default limit on two busy cores
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian package `chromium`) installed")
def test_dashboard_shows_the_study_objectives_and_trials_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard", reason="the dashboard extra is not installed")
    exp = study_experiment(tmp_path / "dash-exp", named=False, n_trials=3)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tune_app.cli", "dashboard", str(exp), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/studies", proc)
        dom = chromium_dom(f"http://127.0.0.1:{port}/dashboard/studies/1", tmp_path / "profile")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "dash-exp" in dom  # the study
    for name in METRICS:  # both objective names, not "Objective 0 / 1"
        assert name in dom
    assert "Objective 0" not in dom
    for number in range(3):  # every trial
        assert f"Trial {number}" in dom


# ---------------------------------------------------------------- W&B saved view (offline)


def view_model(tmp_path: Path) -> dict:
    pytest.importorskip("wandb_workspaces", reason="the workspace extra is not installed")
    from tune_app.wandb_workspace import build_workspace

    exp = write_experiment(tmp_path / "fm1", FINISHED)
    view = build_workspace(analyze_experiment(load_experiment(exp)), entity="someone")
    assert (view.entity, view.project, view.name) == ("someone", "tune-app", "tune-app: fm1")
    return view._to_model().model_dump(by_alias=True, exclude_none=True)


def panel_configs(model: dict) -> dict[str, list[dict]]:
    """viewType -> the panels' configs, across every section of the saved view."""
    sections = model["spec"]["section"]["panelBankConfig"]["sections"]
    out: dict[str, list[dict]] = {}
    for section in sections:
        for panel in section["panels"]:
            out.setdefault(panel["viewType"], []).append(panel["config"])
    return out


def test_wandb_view_panels_keys_and_group_filter(tmp_path: Path) -> None:
    model = view_model(tmp_path)
    panels = panel_configs(model)
    (parallel,) = panels["Parallel Coordinates Plot"]
    accessors = [c["accessor"] for c in parallel["columns"]]
    assert accessors == [f"config:{k}.value" for k in SPACE["parameters"]] + [
        f"summary:{m}" for m in METRICS
    ]
    (scatter,) = panels["Scatter Plot"]
    assert (scatter["xAxis"], scatter["yAxis"]) == (
        "summary:train_latency_s",
        "summary:val_accuracy",
    )
    lines = panels["Run History Line Plot"]
    assert [c["metrics"] for c in lines] == [["val_accuracy"], ["loss_ssl", "loss_sl"]]
    assert {c["xAxis"] for c in lines} == {"epoch"}
    assert {c["groupBy"] for c in lines} == {"pipeline.value"}
    runset = model["spec"]["section"]["runSets"][0]
    (group_filter,) = runset["filters"]["filters"]
    assert group_filter["key"] == {"section": "run", "name": "group"}
    assert (group_filter["op"], group_filter["value"]) == ("=", "fm1")
    colours = model["spec"]["section"][
        "customRunColors"
    ]  # the scatter's colour: each run by its pipeline
    assert colours["m1"] == colours["m4"] != colours["s0"] == colours["s1"] != colours["b0"]


def test_analyze_wandb_workspace_without_credentials_still_exits_0(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    pytest.importorskip("wandb_workspaces", reason="the workspace extra is not installed")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    exp = write_experiment(tmp_path / "fm1", FINISHED)
    assert main(["analyze", str(exp), "--wandb-workspace"]) == 0
    captured = capsys.readouterr()
    assert "no W&B workspace view" in captured.err
    assert (exp / "analysis" / "report.md").is_file()  # the rest of analyze was done
