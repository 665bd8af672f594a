"""Search orchestration with a real local Ray: trials, study, baselines, faults, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from search_spaces import load_space
from tests.support import SPACE, digits_folder, start_driver, wait_while_alive
from tune_app.cli import main
from tune_app.driver import RAY_ENV
from tune_app.location import locate
from tune_app.searcher import build_searcher, optuna_space
from tune_app.wandb_records import read_run, run_files


def write_space(tmp_path: Path, **changes: dict) -> Path:
    space = {**SPACE, **changes}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def study_of(experiment: Path) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{experiment / 'optuna.db'}")
    return optuna.load_study(study_name=experiment.name, storage=storage)


def test_small_search_records_every_trial(finished_search) -> None:
    experiment = finished_search.experiment
    table = pd.read_parquet(experiment / "trials.parquet")
    assert len(table) == 7 and table["trial_id"].is_unique
    assert sorted(table["pipeline"]) == ["mixtraining"] * 5 + ["sl", "ssl_sl"]
    assert sorted(table["role"]) == ["baseline"] * 2 + ["confirm"] * 2 + ["search"] * 3
    assert table["complete"].all() and (table["status"] == "TERMINATED").all()
    assert table.loc[table["pipeline"] == "sl", "alpha"].isna().all()  # knobs: not for baselines
    mix = table[table["role"] == "search"]
    assert mix["alpha"].between(0.1, 0.9).all() and mix["rho"].between(0.5, 1.0).all()
    assert (table["epochs_done"] == table["epochs_planned"]).all()
    assert table["val_accuracy"].between(0, 1).all() and (table["train_latency_s"] > 0).all()
    # Calibrated before the first trial; every trial prices its steps with that table.
    (calibration,) = json.loads((experiment / "calibration.json").read_text())[
        "by_hardware"
    ].values()
    assert {"ssl", "sl", "mix_full"} <= set(calibration["table"])
    assert calibration["settings"]["threads"] == 1 and calibration["steps"] > 0
    assert (table["calibrated_latency_s"] > 0).all()
    study = study_of(experiment)
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    assert study.metric_names == ["val_accuracy", "train_latency_s"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3  # baselines are trials of the experiment, not points of the study
    by_alpha = {round(t.params["alpha"], 9): t.values for t in done}
    for _, row in mix.iterrows():
        assert by_alpha[round(row["alpha"], 9)] == pytest.approx(
            [row["val_accuracy"], row["train_latency_s"]]
        )
    assert (experiment / "space.yaml").exists()
    err = finished_search.err
    assert "Pareto front" in err and "tune-app analyze" in err
    # Not a terminal: plain progress lines, each finished trial reported once, no redrawn
    # display and no Ray status table; a status line once a minute (+ the last), however long
    # the search takes on a busy machine.
    finished = [line for line in err.splitlines() if " finished: " in line]
    assert sorted(line.split()[2] for line in finished) == sorted(table["trial_id"])
    assert all(
        line.startswith("[") and "| ETA" in line or "all trials" in line for line in finished
    )
    assert all("val_accuracy" in line and "train_latency_s" in line for line in finished)
    status = [line for line in err.splitlines() if "(search phase): elapsed" in line]
    assert status and "baselines 2/2; search 3/3" in status[-1]
    clock = [datetime.strptime(line[1:9], "%H:%M:%S") for line in status[:-1]]
    gaps = [(later - earlier).total_seconds() % 86400 for earlier, later in pairwise(clock)]
    assert all(gap >= 59 for gap in gaps), status
    # No Ray status table and no terminal codes. What a trial process prints itself reaches the
    # log behind Ray's "(trainable pid=...)" prefix (an interpreter's shutdown noise, say): not
    # the display, so only the colour codes Ray would wrap it in are checked there.
    ours = [line for line in err.splitlines() if not line.startswith("(")]
    assert not any(line.startswith("+----") for line in ours) and "\x1b[" not in err


def drive(searcher, n: int) -> list[dict]:
    """Ask for n configs, completing each with a fake result as a scheduler would."""
    out = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        out.append(config)
        fake = {"val_accuracy": 0.5 + 0.01 * i, "train_latency_s": 10.0 - i}
        searcher.on_trial_complete(f"t{i}", result=fake)
    return out


def test_sampler_seed_reproduces_configs_and_baselines_come_first(tmp_path: Path) -> None:
    space = load_space(str(write_space(tmp_path)), {"search.num_samples": 14})
    runs = []
    for k in range(2):
        (tmp_path / str(k)).mkdir()
        runs.append(drive(build_searcher(space, tmp_path / str(k), "s"), 14))
    assert runs[0] == runs[1]
    assert runs[0][:2] == [{"pipeline": "sl", "seed": 0}, {"pipeline": "ssl_sl", "seed": 0}]
    assert all(c["pipeline"] == "mixtraining" and "alpha" in c for c in runs[0][2:])
    other = load_space(str(write_space(tmp_path)), {"search.seed": 1})
    (tmp_path / "2").mkdir()
    assert drive(build_searcher(other, tmp_path / "2", "s"), 6)[2:] != runs[0][2:6]


def test_the_default_space_draws_rho_from_its_e_mix_steps_and_covers_them(tmp_path: Path) -> None:
    """At 4 + 4 epochs rho acts through e_mix = floor(4 * rho): the searcher is given one value
    per step (rho = 1 included, which a continuous draw never gives), and the default search's
    12 samples spread over all four recipes. The stand-in objective: more MIX epochs are
    cheaper and slightly less accurate, so no step dominates the others."""
    space = load_space("vit_mix.yaml")
    searcher = build_searcher(space, tmp_path, "s")
    rhos = []
    for i in range(len(space.baseline_seeds) * len(space.baseline_pipelines) + space.num_samples):
        config = searcher.suggest(f"t{i}")
        steps = int(4 * config.get("rho", 0) + 1e-9)
        if config["pipeline"] == "mixtraining":
            rhos.append(config["rho"])
        result = {"val_accuracy": 0.7 - 0.01 * steps, "calibrated_latency_s": 30.0 - 2 * steps}
        searcher.on_trial_complete(f"t{i}", result=result)
    assert len(rhos) == space.num_samples
    assert set(rhos) == {0.25, 0.5, 0.75, 1.0}  # every step drawn, each exactly its value
    counts = pd.Series(rhos).value_counts()
    assert counts.max() <= space.num_samples // 2  # spread, not piled on one step
    dist = optuna_space(space)["rho"]
    assert isinstance(dist, optuna.distributions.CategoricalDistribution)
    assert list(dist.choices) == [0.25, 0.5, 0.75, 1.0]


def test_crashed_trial_resumes_from_its_checkpoint(local_ray, tmp_path, monkeypatch) -> None:
    space = write_space(
        tmp_path,
        baselines={"pipelines": [], "seeds": [0]},
        search={"sampler": "random", "num_samples": 1, "seed": 0},
    )
    monkeypatch.setenv("TUNE_APP_TEST_CRASH_AT_EPOCH", "2")
    monkeypatch.setenv("TUNE_APP_TEST_CRASH_MARKER", str(tmp_path / "crashed"))
    code = main(
        [
            "search",
            "--space",
            str(space),
            "--storage-path",
            str(tmp_path / "e"),
            "--name",
            "f",
            "--wandb",
            "disabled",
        ]
    )
    assert code == 0 and (tmp_path / "crashed").exists()
    table = pd.read_parquet(tmp_path / "e" / "f" / "trials.parquet")
    assert len(table) == 1 and table["complete"].all()
    trial_dir = tmp_path / "e" / "f" / table["trial_id"][0]
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    epochs = [r["epoch"] for r in rows]
    assert epochs == list(range(1, table["epochs_planned"][0] + 1))  # 1, 2, crash, 3, 4


def test_bad_input_exits_2_and_creates_nothing(tmp_path: Path, capsys) -> None:
    space = write_space(
        tmp_path,
        trainer={
            **SPACE["trainer"],
            "dataset": "fashion_mnist",
            "data_dir": str(tmp_path / "missing"),
        },
    )
    storage = tmp_path / "store"
    assert main(["search", "--space", str(space), "--storage-path", str(storage)]) == 2
    assert "trainer.dataset" in capsys.readouterr().err
    assert main(["search", "--space", "no_such_space", "--storage-path", str(storage)]) == 2
    assert (
        main(
            [
                "search",
                "--space",
                str(write_space(tmp_path)),
                "--storage-path",
                str(storage),
                "--set",
                "search.sampler=cmaes",
            ]
        )
        == 2
    )
    assert "search.sampler" in capsys.readouterr().err
    assert (
        main(
            [
                "search",
                "--space",
                str(write_space(tmp_path)),
                "--name",
                "x",
                "--storage-path",
                str(storage),
                "--resume",
            ]
        )
        == 2
    )
    assert not storage.exists()


def test_dry_run_lists_trials_and_writes_nothing(tmp_path: Path, capsys) -> None:
    storage = tmp_path / "store"
    assert (
        main(
            [
                "search",
                "--space",
                str(write_space(tmp_path)),
                "--storage-path",
                str(storage),
                "--dry-run",
            ]
        )
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    assert plan["objectives"][0] == {"metric": "val_accuracy", "goal": "maximize"}
    assert plan["trials"][:2] == [{"pipeline": "sl", "seed": 0}, {"pipeline": "ssl_sl", "seed": 0}]
    assert plan["trials"][2]["count"] == 3
    assert not storage.exists()


def test_dry_run_lists_the_confirmation_phase_after_the_sampled_one(tmp_path: Path, capsys) -> None:
    search = {**SPACE["search"], "confirm": {"top_k": 2, "seeds": [1, 2]}}
    baselines = {"pipelines": ["sl", "ssl_sl"], "seeds": [0, 1, 2]}
    space = str(write_space(tmp_path, search=search, baselines=baselines))
    assert main(["search", "--space", space, "--dry-run"]) == 0
    trials = json.loads(capsys.readouterr().out)["trials"]
    assert len(trials) == 6 + 1 + 1  # baselines per seed, the sampled phase, then confirmation
    assert {k: v for k, v in trials[6].items() if k != "steps"} == {
        "pipeline": "mixtraining",
        "count": 3,
        "searched": sorted(SPACE["parameters"]),
    }
    # rho in [0.5, 1] at 2 + 2 epochs acts in two steps: e_mix 1 and 2
    assert trials[6]["steps"]["rho"]["values"] == [0.5, 1.0]
    assert trials[6]["steps"]["rho"]["e_mix"] == [1, 2]
    confirm = trials[7]
    assert confirm["role"] == "confirm" and confirm["pipeline"] == "mixtraining"
    assert (confirm["top_k"], confirm["seeds"], confirm["count"]) == (2, [1, 2], 4)
    assert confirm["told_to_optuna"] is False and "after the sampled trials" in confirm["when"]
    assert main(["search", "--space", str(write_space(tmp_path)), "--dry-run"]) == 0
    assert all("role" not in t for t in json.loads(capsys.readouterr().out)["trials"])


def test_a_rho_range_with_no_mix_epochs_is_pointed_out(tmp_path: Path, capsys) -> None:
    space = str(write_space(tmp_path))  # rho in [0.5, 1] at 2 + 2 epochs: always a MIX epoch
    assert main(["search", "--space", space, "--dry-run"]) == 0
    assert "no MIX epoch" not in capsys.readouterr().err
    args = ["search", "--space", space, "--dry-run", "--set", "parameters.rho.min=0.0"]
    assert main(args) == 0
    err = capsys.readouterr().err
    # rho is drawn from its steps 0, 0.5, 1 (one per e_mix): one in three has no MIX epoch
    assert "rho < 0.5 gives no MIX epoch" in err and "about 33% of the MixTraining" in err
    assert "--set parameters.rho.min=0.5" in err


@pytest.mark.ray
def test_killed_driver_resumes_every_trial_exactly_once(tmp_path: Path) -> None:
    """SIGKILL the search driver mid-run, then --resume: every planned trial exactly once.

    The data is a user's folder with an unlabelled pool: prepared once by the first driver,
    reused by the trials and by the resumed driver. The model is a timm ViT on the MAE path.
    The scheduler is Pareto halving (grace 1, eta 2), and the kill comes once a trial is in its
    MIX phase: what it stopped stays stopped (PRUNED in the study) across the kill."""
    halving = {"type": "pareto_halving", "grace": 1, "eta": 2}
    space = write_space(
        tmp_path,
        # and the model is a timm ViT (timm's small test model, 2-px patches on 8-px digits)
        trainer={
            **SPACE["trainer"],
            **digits_folder(tmp_path),
            "model": "timm/test_vit",
            "patch_size": 2,
        },  # fmt: skip
        search={
            "sampler": "tpe",
            "num_samples": 3,
            "max_concurrent": 2,
            "seed": 0,
            "scheduler": halving,
        },  # fmt: skip
    )
    storage = tmp_path / "exp"
    args = ["search", "--space", str(space), "--storage-path", str(storage), "--name", "k"]
    env = {**os.environ, **RAY_ENV}
    driver = start_driver([*args, "--wandb", "offline"], env)

    def two_reported_one_in_mix() -> bool:
        texts = [f.read_text() for f in storage.glob("k/*/result.json")]
        return len(texts) >= 2 and any('"phase": "mix"' in text for text in texts)

    wait_while_alive(driver, two_reported_one_in_mix, 240)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
    assert driver.wait() == -signal.SIGKILL  # alive until now: our kill is what ended it
    # as a user would: the experiment knows the rest
    resume = [sys.executable, "-m", "tune_app.cli", "search", "--name", "k"]
    resume += ["--storage-path", str(storage), "--resume"]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_parquet(storage / "k" / "trials.parquet")
    assert len(table) == 5 and table["trial_id"].is_unique
    assert sorted(table["pipeline"]) == ["mixtraining"] * 3 + ["sl", "ssl_sl"]
    assert (table["model"] == "timm/test_vit").all()
    stopped = table["stopped_at_rung"].notna()
    assert (table["complete"] == ~stopped).all()  # every trial either ran out or was stopped
    assert (table.loc[stopped, "stopped_at_rung"] == 1).all()
    if stopped.any():
        assert f"Stopped early by search.scheduler: {stopped.sum()}" in done.stderr
    # The study agrees with Ray: each searched trial once, COMPLETE and told the values it ran,
    # or PRUNED where the scheduler stopped it (never a second study trial for a config the
    # killed driver had asked for).
    mix = table[table["pipeline"] == "mixtraining"]
    study = study_of(storage / "k").trials
    state = optuna.trial.TrialState
    assert len(study) == 3 and {t.state for t in study} <= {state.COMPLETE, state.PRUNED}
    assert sorted(round(t.params["alpha"], 9) for t in study) == sorted(
        round(a, 9) for a in mix["alpha"]
    )
    pruned = {round(t.params["alpha"], 9) for t in study if t.state == state.PRUNED}
    assert pruned == {round(a, 9) for a in mix.loc[~mix["complete"], "alpha"]}
    told = sorted((round(t.params["alpha"], 9), tuple(t.values)) for t in study if t.values)
    ran = [(round(r.alpha, 9), (r.val_accuracy, r.train_latency_s)) for r in mix.itertuples()]
    assert told == sorted(r for r, c in zip(ran, mix["complete"], strict=True) if c)
    # one preparation, under the storage path, read by every trial of both sessions
    assert [p.name[:7] for p in (storage / "data-cache").iterdir()] == ["digits-"]
    assert "data: 10 classes" in done.stderr and "300 unlabeled" in done.stderr
    record = json.loads((storage / "k" / "data.json").read_text())
    assert record["classes"] == [f"digit{i}" for i in range(10)]
    assert record["images"] == {"train": 1797, "unlabeled": 300}
    # W&B: across the killed and the resumed session, each trial logged each epoch it ran once.
    for _, row in table.iterrows():
        files = run_files(storage / "k" / "wandb", row["trial_id"])
        epochs = sorted(h["epoch"] for f in files for h in read_run(f).history)
        assert epochs == list(range(1, row["epochs_done"] + 1)), (row["trial_id"], epochs)


def test_uri_storage_keeps_ray_files_there_and_uploads_ours(
    local_ray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pyarrow URI (file:// here, s3:// or gs:// on a cluster) holds Ray's files and ours."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    space = write_space(
        tmp_path,
        baselines={"pipelines": [], "seeds": [0]},
        search={"sampler": "random", "num_samples": 1, "seed": 0},
    )
    bucket = tmp_path / "bucket"
    args = [
        "search",
        "--space",
        str(space),
        "--storage-path",
        f"file://{bucket}",
        "--name",
        "u",
        "--wandb",
        "disabled",
    ]
    assert main(args) == 0
    remote = bucket / "u"
    assert (remote / "tuner.pkl").exists() and list(remote.glob("experiment_state-*.json"))
    for f in ("space.yaml", "trials.parquet", "optuna.db"):
        assert (remote / f).exists(), f
    local = locate(f"file://{bucket}", "u").local  # the local side, keyed by the whole URI
    assert local.is_relative_to(tmp_path / "cwd" / "experiments")
    assert (local / "optuna.db").exists()
    assert len(pd.read_parquet(remote / "trials.parquet")) == 1
    assert main(args) == 2  # the name is taken at that URI


def test_trials_run_on_the_cpu_unless_the_space_asks_for_gpus(tmp_path: Path) -> None:
    """Ray 2.60 leaves GPUs visible to trials given none: gpu 0 must mean device cpu."""
    from tune_app.suggestion import fixed_settings

    assert fixed_settings(load_space(str(write_space(tmp_path))))["device"] == "cpu"
    gpu = load_space(str(write_space(tmp_path, resources={"cpu": 1, "gpu": 0.5})))
    assert fixed_settings(gpu)["device"] == "auto"


def test_resume_rejects_flags_it_would_ignore(tmp_path: Path, capsys) -> None:
    args = [
        "search",
        "--storage-path",
        str(tmp_path),
        "--name",
        "x",
        "--resume",
    ]
    for extra in (
        ["--num-samples", "3"],
        ["--wandb", "offline"],
        ["--set", "search.seed=1"],
        ["--space", "vit_mix"],
        ["--verbose"],
    ):
        assert main(args + extra) == 2
        assert "drop " + extra[0] in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
