"""An experiment folder as one table: `trials.parquet`, or Ray's own files when it is missing.

`trials.parquet` is written when a search ends (or is interrupted cleanly). A search that is
still running or was killed has only Ray's per-trial files, `<trial_id>/params.json` (the
searcher's suggestion) and `<trial_id>/result.json` (one JSON line per epoch); the table built
from them has the same columns for identity, knobs and final metrics, plus the space's fixed
`trainer` settings (other settings then take `TrialConfig` defaults).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

FINAL_METRICS = (
    "val_accuracy",
    "test_accuracy",
    "train_latency_s",
    "calibrated_latency_s",
    "train_gflops",
    "images_per_s",
    "loss_ssl",
    "loss_sl",
)
IDENTITY = ("trial_id", "pipeline", "seed", "status", "complete", "error")
FROM_PARQUET, FROM_RAY = "trials.parquet", "Ray result files (no trials.parquet)"


class ExperimentError(ValueError):
    """The folder is not a readable experiment; the message names the path and what is missing."""


@dataclass(frozen=True)
class Experiment:
    """One experiment: its resolved space, one row per trial, and where the rows came from."""

    path: Path
    space: dict[str, Any]
    table: pd.DataFrame
    source: str

    @property
    def metrics(self) -> list[str]:
        return [o["metric"] for o in self.space["objectives"]]

    @property
    def goals(self) -> list[str]:
        return [o["goal"] for o in self.space["objectives"]]

    @property
    def knobs(self) -> list[str]:
        return list(self.space.get("parameters") or {})


def load_experiment(path: str | Path) -> Experiment:
    """Read `space.yaml` and the trials of an experiment folder.

    Args:
        path: the experiment folder (`<storage-path>/<name>`).

    Raises:
        ExperimentError: no such folder; a missing or unreadable `space.yaml`; an unreadable
            `trials.parquet` or `<trial>/params.json`; or a table missing required columns.
            The message names the file.
    """
    path = Path(path)
    if not path.is_dir():
        raise ExperimentError(f"{path}: no such experiment folder")
    space = read_space(path)
    if (path / "trials.parquet").is_file():
        table, source = read_table(path / "trials.parquet"), FROM_PARQUET
    else:
        table, source = table_from_ray_files(path, space), FROM_RAY
    missing = [
        c for c in (*IDENTITY, *(o["metric"] for o in space["objectives"])) if c not in table
    ]
    if missing:
        raise ExperimentError(f"{path / source.split()[0]}: missing column(s) {missing}")
    return Experiment(path, space, table.reset_index(drop=True), source)


def read_space(path: Path) -> dict[str, Any]:
    """The resolved space the search wrote (`space.yaml`); only plain YAML is needed here."""
    file = path / "space.yaml"
    if not file.is_file():
        raise ExperimentError(
            f"{path}: no space.yaml; not an experiment folder written by `tune-app search`"
        )
    try:
        space = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ExperimentError(f"{file}: not valid YAML: {e}") from e
    if not isinstance(space, dict) or not space.get("objectives"):
        raise ExperimentError(f"{file}: no `objectives` list")
    objectives = space["objectives"]
    if not isinstance(objectives, list) or not all(_is_objective(o) for o in objectives):
        raise ExperimentError(f"{file}: `objectives` must be a list of {{metric, goal}} entries")
    for key in ("parameters", "trainer", "search"):
        if not isinstance(space.get(key) or {}, dict):
            raise ExperimentError(f"{file}: `{key}` must be a mapping")
    return space


def _is_objective(item: Any) -> bool:
    return isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("metric", "goal"))


def read_table(file: Path) -> pd.DataFrame:
    """`trials.parquet`; a truncated or foreign file is an ExperimentError naming it."""
    try:
        return pd.read_parquet(file)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ExperimentError(f"{file}: not a readable parquet table: {e}") from e


def table_from_ray_files(path: Path, space: dict[str, Any]) -> pd.DataFrame:
    """One row per `<trial>/params.json` under `path` (see the module docstring)."""
    statuses = ray_statuses(path)
    trial_dirs = sorted(d for d in path.iterdir() if (d / "params.json").is_file())
    rows = [ray_trial_row(d, space, statuses) for d in trial_dirs]
    columns = [*IDENTITY, *(space.get("parameters") or {}), *FINAL_METRICS]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def ray_statuses(path: Path) -> dict[str, str]:
    """Trial statuses from Ray's newest `experiment_state-*.json`; {} when absent or unreadable.

    That file is Ray's internal format, so any surprise means "status unknown", not an error.
    """
    states = sorted(path.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text(encoding="utf-8"))
        trials = [json.loads(entry[0]) for entry in data["trial_data"]]
        return {str(t["trial_id"]): str(t["status"]) for t in trials}
    except (ValueError, KeyError, TypeError, IndexError):
        return {}


def parse_results(text: str) -> list[dict[str, Any]]:
    """The rows of a Ray `result.json` (one JSON object per line, one line per epoch).

    The one rule for every reader of the file: a line that is not JSON (blank, or the tail a
    killed driver left half-written) is skipped.
    """
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_results(file: Path) -> list[dict[str, Any]]:
    """A local `result.json`'s rows (`parse_results`); none when the file is missing."""
    if not file.is_file():
        return []
    return parse_results(file.read_text(encoding="utf-8"))


def read_params(file: Path) -> dict[str, Any]:
    """A trial's `params.json` (written once, before the trial starts): a JSON object."""
    try:
        params = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ExperimentError(f"{file}: not a readable JSON object: {e}") from e
    if not isinstance(params, dict):
        raise ExperimentError(f"{file}: expected a JSON object, got {type(params).__name__}")
    return params


def ray_trial_row(trial_dir: Path, space: dict[str, Any], statuses: dict[str, str]) -> dict:
    """A trials.parquet-like row from one Ray trial folder."""
    params = read_params(trial_dir / "params.json")
    results = read_results(trial_dir / "result.json")
    last = results[-1] if results else {}
    trial_id = str(last.get("trial_id", trial_dir.name))
    pipeline = last.get("pipeline") or params.get("pipeline", "mixtraining")
    error_file = trial_dir / "error.txt"
    status = statuses.get(trial_id) or ("ERROR" if error_file.is_file() else "UNKNOWN")
    error = error_file.read_text(errors="replace") if status == "ERROR" else None
    done, planned = last.get("epoch", 0), last.get("epochs_planned")
    parameters = space.get("parameters") or {}
    row: dict[str, Any] = {
        "trial_id": trial_id,
        "pipeline": pipeline,
        "seed": last.get("seed", params.get("seed", (space.get("search") or {}).get("seed", 0))),
        "status": status,
    }
    for name, spec in parameters.items():
        value = params.get(name, spec.get("value"))  # `value:` parameters are constants
        row[name] = value if pipeline == "mixtraining" else None
    row.update({k: v for k, v in (space.get("trainer") or {}).items() if k not in row})
    row.update({"epochs_done": done, "epochs_planned": planned})
    row.update({m: last.get(m) for m in FINAL_METRICS})
    # Every planned epoch reported means the metrics are final, even if Ray never got to mark
    # the trial TERMINATED (the search was killed right after).
    row["complete"] = planned is not None and done == planned and status != "ERROR"
    row["error"] = error
    return row
