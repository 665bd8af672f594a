"""`tune-app` CLI: exit codes, dry-run JSON, run folders, resume, bad input writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support import TINY_RUN
from tune_app.cli import main


def write_config(tmp_path: Path, values: dict, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_dry_run_prints_the_pinned_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = write_config(tmp_path, {**TINY_RUN, "epochs_ssl": 10, "epochs_sl": 4})
    assert main(["train", "--config", cfg, "--set", "rho=0.5", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["phases"] == [
        {"name": "ssl", "epochs": 8},
        {"name": "mix", "epochs": 2},
        {"name": "sl", "epochs": 2},
    ]
    assert plan["config"]["rho"] == 0.5 and plan["config"]["lr_ssl"] == pytest.approx(1.5e-4)
    assert list(tmp_path.iterdir()) == [tmp_path / "run.yaml"]


@pytest.mark.parametrize(
    ("values", "sets", "needle"),
    [
        ({**TINY_RUN, "rho": 2.0}, [], "rho"),
        ({**TINY_RUN, "alhpa": 0.5}, [], "alhpa"),
        (TINY_RUN, ["anneal=exp"], "anneal"),
        (TINY_RUN, ["rho"], "KEY=VALUE"),
        (
            {**TINY_RUN, "dataset": "fashion_mnist", "data_dir": "/nonexistent/fm"},
            [],
            "fashion_mnist",
        ),
        ({**TINY_RUN, "model": "resnet_micro", "mask_ratio": 0.5}, [], "mask_ratio"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, values: dict, sets: list, needle: str
) -> None:
    cfg = write_config(tmp_path, values)
    out = tmp_path / "out"
    args = ["train", "--config", cfg, "--out", str(out)] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err
    # file errors name the file; a --set value or form errors name the --set
    assert ("--set" in err and "run.yaml" not in err) if sets else "run.yaml" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "needle"), [("rho: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "mapping")]
)
def test_malformed_files_exit_2(tmp_path: Path, capsys, text: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path)]) == 2
    assert needle in capsys.readouterr().err


def test_missing_config_file_and_usage_errors_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train"]) == 2  # --config is required
    assert main(["frobnicate"]) == 2


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_train_writes_run_folder_and_resumes(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, TINY_RUN)
    out = tmp_path / "run"
    assert main(["train", "--config", cfg, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    final = json.loads(captured.out)
    assert "test_accuracy" in final and "epoch   3/3 [ sl]" in captured.err
    assert {p.name for p in out.iterdir()} == {
        "config.yaml",
        "history.jsonl",
        "checkpoint.pt",
        "metrics.json",
        "calibration.json",  # the brief step-cost calibration behind calibrated_latency_s
    }
    assert len((out / "history.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "metrics.json").read_text()) == final
    # A second run into the same folder is refused; --resume of a finished run changes nothing.
    assert main(["train", "--config", cfg, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--config", cfg, "--out", str(out), "--resume"]) == 0
    assert json.loads(capsys.readouterr().out) == final
    assert len((out / "history.jsonl").read_text().splitlines()) == 3
    # Resuming with other settings is bad input.
    assert main(["train", "--config", cfg, "--out", str(out), "--resume", "--set", "rho=1"]) == 2


def test_resume_without_checkpoint_exits_2(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, TINY_RUN)
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "x"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys) -> None:
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["--version"]) == 0


def test_spaces_lists_bundled_spaces_with_descriptions(capsys) -> None:
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name in ("vit_mix", "resnet_mix", "vit_tiny_cifar10", "resnet18_cifar10"):
        assert name in out
    assert "Fashion-MNIST" in out


def test_a_fresh_run_starts_its_history_anew(tmp_path: Path, capsys) -> None:
    """Leftovers of a run that died before its first checkpoint are not appended to."""
    cfg = write_config(tmp_path, {**TINY_RUN, "pipeline": "sl", "epochs_sl": 1})
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.jsonl").write_text('{"epoch": 7}\n')
    assert main(["train", "--config", cfg, "--out", str(out)]) == 0
    rows = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
