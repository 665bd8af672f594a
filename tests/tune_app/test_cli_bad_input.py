"""Bad input everywhere: exit code 2, one line naming the file or field, nothing half-written.

Also the inputs that used to give wrong results without an error: a relative `data_dir` in a
space, and YAML strings (`1e-3`, `yes`) that came back from our own files as other types.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import struct
from pathlib import Path

import pytest
import yaml

from analysis import write_analysis
from search_spaces import SpaceError, load_space
from tests.support import (
    ANALYSIS_SPACE,
    FINISHED,
    SPACE,
    TINY_RUN,
    write_experiment,
    write_ray_experiment,
)
from trainers.config import ConfigError, TrialConfig
from tune_app.cli import main
from tune_app.settings import UserInputError, load_yaml, read_mapping

# The documented limits (docs/config.md), the tests' own copy.
COUNT_MAX = 2**31 - 1
SEED_MAX = 2**64 - 1
MAX_NAME_LEN = 100

FLOAT_FIELDS = [
    f.name for f in dataclasses.fields(TrialConfig) if "float" in str(f.type) and f.name != "betas"
]
# Counts: the smallest allowed value for each integer field (seed has its own test).
COUNT_FIELDS = {"epochs_ssl": 0, "epochs_sl": 1, "batch_size": 1, "eval_batch_size": 1}
COUNT_FIELDS["num_threads"] = 0


def write_yaml(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def one_error_line(err: str) -> str:
    """The whole of stderr: one `tune-app: error:` line, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tune-app: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- TrialConfig numbers


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_every_float_field_rejects_inf_and_nan_naming_the_field(name: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}: "):
        TrialConfig.from_dict({**TINY_RUN, name: value})


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_betas_reject_inf_and_nan(value: float) -> None:
    with pytest.raises(ConfigError, match=r"^betas: "):
        TrialConfig.from_dict({**TINY_RUN, "betas": [0.9, value]})


@pytest.mark.parametrize(("name", "low"), list(COUNT_FIELDS.items()))
def test_integer_fields_have_a_range(name: str, low: int) -> None:
    TrialConfig.from_dict({**TINY_RUN, name: low})
    TrialConfig.from_dict({**TINY_RUN, name: COUNT_MAX})
    for bad in (low - 1, COUNT_MAX + 1):
        with pytest.raises(ConfigError, match=rf"^{name}: .*\[{low}, {COUNT_MAX}\]"):
            TrialConfig.from_dict({**TINY_RUN, name: bad})


def test_seed_range_is_torchs() -> None:
    import torch

    for good in (0, SEED_MAX):
        TrialConfig.from_dict({**TINY_RUN, "seed": good})
        torch.Generator().manual_seed(good)  # the documented bound is torch's own
    for bad in (-1, SEED_MAX + 1):
        with pytest.raises(ConfigError, match=r"^seed: "):
            TrialConfig.from_dict({**TINY_RUN, "seed": bad})
    with pytest.raises((RuntimeError, ValueError)):  # overflow: why the bound is there
        torch.Generator().manual_seed(SEED_MAX + 1)


def test_weight_decay_inf_exits_2_before_anything_runs(tmp_path: Path, capsys) -> None:
    cfg = write_yaml(tmp_path / "run.yaml", {**TINY_RUN, "weight_decay": math.inf})
    out = tmp_path / "out"
    assert main(["train", "--config", cfg, "--out", str(out)]) == 2
    assert "weight_decay" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


# ---------------------------------------------------------------- output paths and names


def test_train_out_naming_a_file_exits_2(tmp_path: Path, capsys) -> None:
    cfg = write_yaml(tmp_path / "run.yaml", TINY_RUN)
    file = tmp_path / "taken"
    file.write_text("keep me")
    for out in (file, file / "run"):
        assert main(["train", "--config", cfg, "--out", str(out)]) == 2
        assert str(file) in one_error_line(capsys.readouterr().err)
    assert file.read_text() == "keep me"


@pytest.mark.parametrize("command", ["analyze", "export"])
def test_out_under_a_file_exits_2_and_writes_nothing(tmp_path: Path, capsys, command) -> None:
    exp = write_experiment(tmp_path / "exp", FINISHED)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker / "sub" / ("best.yaml" if command == "export" else "analysis")
    extra = ["--select", "knee"] if command == "export" else []
    assert main([command, str(exp), *extra, "--out", str(out)]) == 2
    assert str(blocker) in one_error_line(capsys.readouterr().err)
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in exp.iterdir()) == ["space.yaml", "trials.parquet"]


@pytest.mark.parametrize("command", ["train", "analyze", "export"])
def test_an_over_long_out_exits_2(tmp_path: Path, capsys, command: str) -> None:
    cfg = write_yaml(tmp_path / "run.yaml", TINY_RUN)
    exp = write_experiment(tmp_path / "exp", FINISHED)
    out = str(tmp_path / ("a" * 300))
    args = {
        "train": ["train", "--config", cfg, "--out", out],
        "analyze": ["analyze", str(exp), "--out", out],
        "export": ["export", str(exp), "--select", "knee", "--out", out],
    }[command]
    assert main(args) == 2
    assert "too long" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "/abs", ".hidden", "-flag", "with space", "a" * (MAX_NAME_LEN + 1), ""]
)
def test_unsafe_experiment_names_exit_2_and_write_nothing(tmp_path: Path, capsys, name) -> None:
    space = write_yaml(tmp_path / "s.yaml", SPACE)
    storage = tmp_path / "store" / "inner"
    for resume in ([], ["--resume"]):
        args = ["search", "--name", name, "--storage-path", str(storage), "--dry-run", *resume]
        args += [] if resume else ["--space", space]
        assert main(args) == 2
        assert "--name" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_safe_names_pass_and_default_names_are_made_safe() -> None:
    from tune_app.settings import check_name, default_name

    assert check_name("fm1_v2.3-b") == "fm1_v2.3-b"
    with pytest.raises(UserInputError, match="--name"):
        check_name("..")
    assert default_name("cost $x^$ / ../run", "20260101-000000") == (
        "cost__x_____.._run-20260101-000000"
    )
    assert default_name("../..", "t") == "experiment-t"
    long = default_name("n" * 500, "20260101-000000")
    assert len(long) == MAX_NAME_LEN and check_name(long) == long


def test_a_space_name_that_is_no_folder_name_still_searches(tmp_path: Path, capsys) -> None:
    space = write_yaml(tmp_path / "s.yaml", {**SPACE, "name": "../../$x$ run"})
    storage = tmp_path / "store"
    assert main(["search", "--space", space, "--storage-path", str(storage), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    folder = Path(plan["local_files"])
    assert folder.parent == storage.resolve() and folder.name.startswith("x__run-")


# ---------------------------------------------------------------- corrupt experiment files


def corrupt_parquet(exp: Path) -> Path:
    file = exp / "trials.parquet"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    return file


def corrupt_space(exp: Path) -> Path:
    file = exp / "space.yaml"
    file.write_bytes(b"\xff\xfe\x00binary")  # not UTF-8
    return file


def space_with_bad_objectives(exp: Path) -> Path:
    file = exp / "space.yaml"
    file.write_text("objectives: [val_accuracy]\n")
    return file


def corrupt_params(exp: Path) -> Path:
    file = exp / "r1" / "params.json"
    file.write_text('{"alpha": 0.3, "rh')
    return file


CORRUPTIONS = {
    "truncated trials.parquet": (False, corrupt_parquet),
    "binary space.yaml": (False, corrupt_space),
    "objectives not mappings": (False, space_with_bad_objectives),
    "torn params.json": (True, corrupt_params),
}


@pytest.mark.parametrize("command", ["analyze", "export"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_experiment_files_exit_2_naming_the_file(
    tmp_path: Path, capsys, command: str, corruption: str
) -> None:
    ray_files, corrupt = CORRUPTIONS[corruption]
    exp = tmp_path / "exp"
    if ray_files:
        write_ray_experiment(exp, with_state=False)
    else:
        write_experiment(exp, FINISHED)
    file = corrupt(exp)
    before = sorted(exp.rglob("*"))
    out = tmp_path / ("best.yaml" if command == "export" else "analysis")
    extra = ["--select", "knee"] if command == "export" else []
    assert main([command, str(exp), *extra, "--out", str(out)]) == 2
    assert str(file) in one_error_line(capsys.readouterr().err)
    assert sorted(exp.rglob("*")) == before and not out.exists()


# ---------------------------------------------------------------- sl_accel: skip


def test_skip_that_keeps_no_sample_is_rejected() -> None:
    from trainers.accel import check_accel

    check_accel("skip", 10, 0.9)  # keeps 1
    with pytest.raises(ValueError, match=r"^sl_skip_fraction: 0.96 .* no sample of the 10"):
        check_accel("skip", 10, 0.96)
    check_accel("mixup", 10, 0.96)  # the fraction only matters for skip


def test_train_with_skip_keeping_nothing_exits_2_and_writes_nothing(tmp_path: Path, capsys):
    # digits, labeled_fraction 0.01: a pool of about a dozen images, none kept at 0.99
    run = {**TINY_RUN, "sl_accel": "skip", "sl_skip_fraction": 0.99, "labeled_fraction": 0.01}
    cfg = write_yaml(tmp_path / "run.yaml", run)
    out = tmp_path / "out"
    assert main(["train", "--config", cfg, "--out", str(out)]) == 2
    err = capsys.readouterr().err  # after the progress lines that say what would run
    assert [ln for ln in err.splitlines() if ln.startswith("tune-app: error:")] == [
        err.strip().splitlines()[-1]
    ]
    assert "sl_skip_fraction" in one_error_line(err.strip().splitlines()[-1])
    assert not out.exists()


def test_search_with_skip_keeping_nothing_fails_before_ray(tmp_path: Path) -> None:
    from tune_app.search import check_data

    trainer = {**SPACE["trainer"], "sl_accel": "skip", "sl_skip_fraction": 0.99}
    trainer["labeled_fraction"] = 0.01  # digits: a pool of about a dozen images
    space = load_space(write_yaml(tmp_path / "s.yaml", {**SPACE, "trainer": trainer}))
    with pytest.raises(UserInputError, match=r"s.yaml: trainer.sl_skip_fraction: 0.99"):
        check_data(space)


# ---------------------------------------------------------------- plots


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_mathtext_in_a_space_name_or_description_does_not_break_the_plot(tmp_path: Path):
    space = {**ANALYSIS_SPACE, "name": "cost $x^$ and $\\frac{a$", "description": "$$"}
    exp = write_experiment(tmp_path / "exp", FINISHED, space)
    _, folder = write_analysis(exp)
    assert (folder / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- W&B run files


def run_file(path: Path, epochs: list[int]) -> None:
    """A W&B run file (header + LevelDB-log FULL chunks) holding one history row per epoch."""
    from wandb.proto import wandb_internal_pb2 as pb

    body = b""
    for epoch in epochs:
        record = pb.Record()
        item = record.history.item.add()
        item.key, item.value_json = "epoch", json.dumps(epoch)
        data = record.SerializeToString()
        body += struct.pack("<IHB", 0, len(data), 1) + data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b":W&B\xbe\xef\x01" + body)


@pytest.mark.parametrize("size", [0, 3, 6])
def test_an_empty_or_headless_run_file_holds_no_epoch_and_breaks_nothing(
    tmp_path: Path, size: int
) -> None:
    from tune_app.wandb_records import logged_epochs, read_run

    wandb = tmp_path / "wandb"
    run_file(wandb / "offline-run-1-t1" / "run-t1.wandb", [1, 2, 3])
    assert logged_epochs(wandb, "t1") == 3
    empty = wandb / "offline-run-2-t1" / "run-t1.wandb"
    empty.parent.mkdir()
    empty.write_bytes(b":W&B\xbe\xef\x01"[:size])
    assert read_run(empty).history == []
    assert logged_epochs(wandb, "t1") == 3  # the resume's question still has its answer
    (wandb / "offline-run-1-t1" / "run-t1.wandb").unlink()
    assert logged_epochs(wandb, "t1") == 0


def test_a_foreign_run_file_is_still_an_error(tmp_path: Path) -> None:
    from tune_app.wandb_records import read_run

    (tmp_path / "run-x.wandb").write_bytes(b"PK\x03\x04 a zip, not a run")
    with pytest.raises(ValueError, match="not a W&B run file"):
        read_run(tmp_path / "run-x.wandb")


# ---------------------------------------------------------------- data_dir


def test_a_relative_data_dir_in_a_space_is_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    trainer = {**SPACE["trainer"], "data_dir": "data/fm"}
    space = load_space(write_yaml(tmp_path / "s.yaml", {**SPACE, "trainer": trainer}))
    assert space.trainer["data_dir"] == str(tmp_path.resolve() / "data" / "fm")
    assert space.trial_config({}).data_dir == str(tmp_path.resolve() / "data" / "fm")
    params = {**SPACE["parameters"], "data_dir": {"values": ["a", "/abs/b", None]}}
    space = load_space(write_yaml(tmp_path / "s2.yaml", {**SPACE, "parameters": params}))
    assert space.parameters["data_dir"].values == (str(tmp_path.resolve() / "a"), "/abs/b", None)
    params = {**SPACE["parameters"], "data_dir": {"value": "~/d"}}
    space = load_space(write_yaml(tmp_path / "s3.yaml", {**SPACE, "parameters": params}))
    assert space.constants["data_dir"] == str(Path("~/d").expanduser())


# ---------------------------------------------------------------- YAML that reads back the same

TRICKY = ["1e-3", "1.5e3", ".5", "1e3", "yes", "no", "on", "null", "~", "0x10", "0o17",
          "1_000", "12:30", ".inf", ".NaN", "true", "2026-01-01", "", " lead", "#x", "a: b",
          "- x"]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY)
def test_dump_yaml_reads_back_every_tricky_string(text: str) -> None:
    from tune_app.settings import dump_yaml

    data = {"s": text, "l": [text], "n": {"k": text}}
    assert load_yaml(dump_yaml(data)) == data
    assert yaml.safe_load(dump_yaml(data)) == data  # analysis reads space.yaml with PyYAML


def test_trial_config_round_trips_through_dump_yaml(tmp_path: Path) -> None:
    """Every field type of TrialConfig: str, str | None, int, float, float | None, tuple."""
    from tune_app.settings import dump_yaml

    values = {**TINY_RUN, "data_dir": "1e-3", "mask_ratio": None, "lr_ssl": 1e-5}
    values.update(betas=[0.9, 0.999], weight_decay=0.0, seed=SEED_MAX, warmup_sl=1e-3)
    config = TrialConfig.from_dict(values)
    kinds = {type(v) for v in config.to_dict().values()}
    assert {str, type(None), int, float, list} <= kinds
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(config.to_dict()))
    assert TrialConfig.from_dict(read_mapping(path)) == config


def test_space_yaml_written_by_a_search_reads_back_equal(tmp_path: Path) -> None:
    """Every field type of a space: strings that look like numbers/booleans/null in the name,
    description and W&B block; ints, floats, None, bools, lists; every parameter form."""
    from tune_app.experiment import write_space
    from tune_app.location import locate

    raw = {
        **SPACE,
        "name": "1e-3",
        "description": "yes",
        "trainer": {**SPACE["trainer"], "data_dir": None, "weight_decay": 1e-4,
                    "betas": [0.9, 1e-3]},
        "parameters": {
            **SPACE["parameters"],
            "lr_sl": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
            "eval_batch_size": {"distribution": "int_uniform", "min": 64, "max": 128},
            "lam": {"distribution": "q_uniform", "min": 0.3, "max": 1.0, "q": 0.1},
            "mask_ratio": {"values": [None, 0.5]},
            "label_noise": {"value": 0.0},
        },
        "wandb": {"project": "null", "group": "0x10", "tags": ["1e-3", "on", "1.5e3", "~"]},
    }  # fmt: skip
    (tmp_path / "s.json").write_text(json.dumps(raw))  # JSON: the user's strings stay strings
    space = load_space(str(tmp_path / "s.json"))
    assert space.name == "1e-3" and space.wandb["tags"] == ["1e-3", "on", "1.5e3", "~"]
    write_space(space, locate(str(tmp_path), "exp"))
    assert load_space(str(tmp_path / "exp" / "space.yaml")) == space


def test_export_writes_yaml_that_reads_back(tmp_path: Path, capsys) -> None:
    space = {**ANALYSIS_SPACE, "trainer": {**ANALYSIS_SPACE["trainer"]}}
    rows = [{**r, "data_dir": "1e-3"} for r in FINISHED]
    exp = write_experiment(tmp_path / "exp", rows, space)
    out = tmp_path / "best.yaml"
    assert main(["export", str(exp), "--select", "knee", "--out", str(out)]) == 0
    assert read_mapping(out)["data_dir"] == "1e-3"


# ---------------------------------------------------------------- one place maps errors to 2


@pytest.mark.parametrize(
    "error",
    [
        UserInputError("x.yaml: bad"),
        ConfigError("rho: 2 is not allowed"),
        SpaceError("s.yaml: search.seed: bad"),
        FileExistsError(errno.EEXIST, "File exists", "/some/out"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory", "/a/file/x"),
        OSError(errno.ENAMETOOLONG, "File name too long", "/aaaa"),
        PermissionError(errno.EACCES, "Permission denied", "/root/x"),
    ],
    ids=lambda e: type(e).__name__ + str(getattr(e, "errno", "")),
)
def test_main_maps_every_user_error_to_exit_2_and_one_line(monkeypatch, capsys, error) -> None:
    def body(*args: object, **kwargs: object) -> int:
        raise error

    monkeypatch.setattr("tune_app.analyze.analyze_command", body)
    assert main(["analyze", "somewhere"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert (getattr(error, "filename", None) or str(error)) in line


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug"), OSError(errno.ENOSPC, "No space left on device", "/x"), KeyError("k")],
)
def test_main_lets_failures_that_are_not_the_users_through(monkeypatch, error) -> None:
    def body(*args: object, **kwargs: object) -> int:
        raise error

    monkeypatch.setattr("tune_app.analyze.analyze_command", body)
    with pytest.raises(type(error)):
        main(["analyze", "somewhere"])


def test_the_cli_maps_errors_without_importing_torch() -> None:
    """A guard: the error mapping looks classes up instead of importing them (`--help` fast)."""
    import subprocess
    import sys

    code = "import sys, tune_app.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
