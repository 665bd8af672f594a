"""`<experiment>/calibration.json`: the step-cost table a search's trials price their steps with.

Measured before the first trial, while nothing else runs, for the space's model, data, batch
size, precision and the per-trial threads (`trainers.calibrate`), in a Ray task holding one
trial's resources (so on a cluster it runs on a node with the trial's GPU, not on the driver);
reused as is on `--resume` so every trial of an experiment is priced with one table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from trainers import TrialConfig
from trainers.calibrate import Calibration, calibrate

CALIBRATION_FILE = "calibration.json"


def choices(space: SearchSpace, name: str) -> list[Any]:
    """Every value a setting can take in the space: searched values, or the fixed one."""
    param = space.parameters.get(name)
    if param is None:
        return [space.trial_config({}, "mixtraining", None).to_dict()[name]]
    if param.distribution == "categorical":
        return list(param.values)
    if param.distribution == "constant":
        return [param.value]
    raise ValueError(f"{space.source}: parameters.{name}: must be categorical or constant")


def space_step_kinds(space: SearchSpace) -> set[str]:
    """The step kinds any trial of the space (searched or baseline) can take.

    A kind no trial ends up using costs a few calibration steps; a missing one would fail
    every trial that takes it, so this errs on the side of more.
    """
    kinds = {"sl", "ssl"}
    kinds |= {f"mix_{p}" for p in choices(space, "mix_pass")}
    kinds |= {f"sl_{a}" for a in choices(space, "sl_accel") if a != "none"}
    return kinds


def calibration_config(fixed: dict[str, Any]) -> TrialConfig:
    """The config calibration measures: a trial's fixed settings (model, data, batch, threads,
    device, precision), as a MixTraining run so every phase exists."""
    return TrialConfig.from_dict({**fixed, "pipeline": "mixtraining"})


def write_calibration(calibration: Calibration, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_calibration(path: Path) -> Calibration:
    try:
        return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable step-cost calibration: {e}") from e


def experiment_calibration(
    space: SearchSpace,
    fixed: dict[str, Any],
    experiment: Path,
    steps: int | None = None,
    measure: Callable[..., Calibration] = calibrate,
) -> Calibration:
    """The experiment's calibration: read from `calibration.json` if present (a resumed
    search), else measured now by `measure` (`trainers.calibrate.calibrate`, or the same run
    where a trial would run: see `tune_app.orchestrate`) and written there."""
    path = experiment / CALIBRATION_FILE
    if path.is_file():
        return read_calibration(path)
    kwargs = {"steps": steps} if steps else {}
    calibration = measure(calibration_config(fixed), space_step_kinds(space), **kwargs)
    experiment.mkdir(parents=True, exist_ok=True)
    write_calibration(calibration, path)
    return calibration
