"""`tune-app train`: one run of the pipeline with progress lines, checkpoints and final metrics.

The run folder (`--out`) holds `config.yaml` (resolved), `history.jsonl` (one line per epoch),
`checkpoint.pt` (after every epoch, written atomically), `metrics.json` (final metrics) and
`calibration.json` (the brief step-cost calibration behind `calibrated_latency_s`).
Nothing is written before the config and data have been checked.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from trainers import ConfigError, SetupError, TrialConfig, plan_for, run
from trainers.calibrate import run_hardware_key
from trainers.files import write_atomic
from trainers.pipeline import same_recipe
from tune_app.checkpoints import CheckpointError, load_state
from tune_app.claim import claim
from tune_app.data import prepare_for
from tune_app.settings import (
    UserInputError,
    check_out_path,
    dump_yaml,
    parse_set,
    read_mapping,
    to_json,
    write_text_atomic,
)

CHECKPOINT = "checkpoint.pt"
BRIEF_STEPS = 5  # per step kind; a search calibrates longer (trainers.calibrate)


def load_config(path: str, overrides: tuple[str, ...] = ()) -> TrialConfig:
    """The config file plus `--set` overrides, validated; errors name the file and field."""
    given = parse_set(overrides)
    values = {**read_mapping(path), **given}
    try:
        return TrialConfig.from_dict(values)
    except ConfigError as e:
        field = str(e).split(":", 1)[0]  # the message starts with the field it is about
        raise UserInputError(f"{'--set' if field in given else path}: {e}") from e


def trial_plan(config: TrialConfig) -> dict[str, Any]:
    phases = [{"name": name, "epochs": epochs} for name, epochs in plan_for(config)]
    return {"config": config.to_dict(), "phases": phases}


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through `trainers.files.write_atomic`: a crash never leaves half a checkpoint."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


class RunFolder:
    """Writes a run's files; created on the first epoch so bad input leaves nothing behind."""

    def __init__(self, out: Path, config: TrialConfig, total_epochs: int, resumed: bool) -> None:
        self.out, self.config, self.total = out, config, total_epochs
        self.started = time.perf_counter()
        self.append = resumed  # a fresh run starts history.jsonl anew, whatever was there

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(dump_yaml(self.config.to_dict()))
        mode, self.append = ("a" if self.append else "w"), True
        with open(self.out / "history.jsonl", mode, encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        if state is not None:  # None: an epoch the checkpoint cadence skips
            save_atomic(state, self.out / CHECKPOINT)
        print(
            progress_line(metrics, self.total, time.perf_counter() - self.started),
            file=sys.stderr,
            flush=True,
        )


def progress_line(m: dict[str, Any], total: int, elapsed: float) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    return (
        f"epoch {m['epoch']:>3}/{total} [{m['phase']:>3}] loss_ssl {fmt(m['loss_ssl'])} "
        f"loss_sl {fmt(m['loss_sl'])} val_acc {fmt(m['val_accuracy'])} "
        f"train {m['train_latency_s']:.1f}s {m['images_per_s']:.0f} img/s elapsed {elapsed:.1f}s"
    )


def load_checkpoint(out: Path) -> dict[str, Any]:
    """The run's last state; a missing, corrupt or crafted file is bad input naming it."""
    path = out / CHECKPOINT
    if not path.is_file():
        raise UserInputError(f"--resume: {path} does not exist; nothing to resume")
    try:
        return load_state(path)
    except CheckpointError as e:
        raise UserInputError(f"--resume: {e}") from e


def run_step_costs(
    config: TrialConfig, folder: Path, checkpoint: dict[str, Any] | None
) -> dict[str, float]:
    """Seconds per step kind for `calibrated_latency_s`: a brief calibration before training
    (written to `<out>/calibration.json`), or, on --resume, that file's table for this
    machine's node type (measured briefly now if the run resumes on another type)."""
    from tune_app.calibration import CALIBRATION_FILE, run_calibration, table_for

    path = folder / CALIBRATION_FILE
    if checkpoint is None and path.is_file():
        path.unlink()  # a fresh run measures afresh

    def notice() -> None:
        print("tune-app train: calibrating step costs briefly", file=sys.stderr)

    tables = run_calibration(config, folder, steps=BRIEF_STEPS, warmup=2, before=notice)
    return table_for(tables, run_hardware_key(config))


def train_command(
    config_path: str, overrides: tuple[str, ...], out: str | None, resume: bool, dry_run: bool
) -> int:
    """Body of `tune-app train`. Returns the exit code; raises UserInputError for bad input."""
    config = load_config(config_path, overrides)
    if dry_run:
        print(to_json(trial_plan(config)))
        return 0
    folder = check_out_path(out or Path("runs") / Path(config_path).stem, "--out", folder=True)
    with claim(folder, "run folder"):  # one process per run folder, before reading anything
        return train_in(folder, config, config_path, resume)


def train_in(folder: Path, config: TrialConfig, config_path: str, resume: bool) -> int:
    """Train (or resume) `config` in `folder`, which the caller has claimed."""
    checkpoint = load_checkpoint(folder) if resume else None
    if checkpoint is None and (folder / CHECKPOINT).exists():
        raise UserInputError(
            f"--out {folder} already holds a run; pass --resume to continue it "
            "or pick another --out"
        )
    if checkpoint is not None and not same_recipe(checkpoint.get("config", {}), config.to_dict()):
        raise UserInputError(f"--resume: {folder} was written by a different config")
    if checkpoint is not None:  # keep history.jsonl to the epochs that the checkpoint covers
        rows = [json.dumps(m) + "\n" for m in checkpoint["history"]]
        (folder / "history.jsonl").write_text("".join(rows))
    total = sum(epochs for _, epochs in plan_for(config))
    print(
        f"tune-app train: {config.pipeline} {config.model} on {config.dataset}, {total} epochs"
        f" -> {folder}",
        file=sys.stderr,
    )
    record = prepare_for(config, config_path)  # a folder: decoded once, before the run starts
    if record is not None:  # the class names in label order, beside the run's metrics
        write_text_atomic(folder / "data.json", to_json(record) + "\n")
    runner = RunFolder(folder, config, total, resumed=checkpoint is not None)
    try:
        final = run(config, runner.report, checkpoint, run_step_costs(config, folder, checkpoint))
    except SetupError as e:  # raised before any epoch ran: missing data, settings data rejects
        raise UserInputError(f"{config_path}: {e}") from e
    write_text_atomic(folder / "metrics.json", to_json(final) + "\n")
    print(to_json(final))
    return 0
