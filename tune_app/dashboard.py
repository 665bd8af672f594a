"""`tune-app dashboard EXP_DIR`: optuna-dashboard on the experiment's study (`optuna.db`).

optuna-dashboard is an optional extra (`pip install 'tune-app[dashboard]'`). The search names
its study's objectives (`study.set_metric_names`); a study written before that, or by hand,
gets the names from the experiment's `space.yaml` here, so the dashboard never shows bare
"Objective 0 / 1".
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from analysis import ExperimentError
from analysis.load import read_space
from tune_app.location import study_url
from tune_app.settings import UserInputError

EXTRA = "pip install 'tune-app[dashboard]'"


def storage_of(experiment: Path) -> Any:
    """The experiment's Optuna storage; bad input (no folder, no optuna.db) is UserInputError."""
    import optuna
    import sqlalchemy.exc

    db = experiment / "optuna.db"
    if not db.is_file():
        raise UserInputError(
            f"{db}: no such file; give an experiment folder written by `tune-app search`"
        )
    try:
        return optuna.storages.RDBStorage(study_url(experiment))
    except sqlalchemy.exc.DatabaseError as e:  # a file, but not an SQLite database
        raise UserInputError(f"{db}: not an Optuna database ({e.orig})") from e


def name_objectives(storage: Any, metrics: list[str]) -> list[str]:
    """Give every unnamed study whose objective count matches `metrics` those names.

    Returns:
        The names of the studies that were renamed (already named ones are left alone).
    """
    import optuna

    renamed = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        if study.metric_names is None and len(study.directions) == len(metrics):
            with warnings.catch_warnings():  # experimental since Optuna 3.2; what we want here
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(metrics))
            renamed.append(summary.study_name)
    return renamed


def prepare(experiment: str | Path) -> Any:
    """Check the experiment, name its objectives if needed, return the storage to serve."""
    path = Path(experiment)
    if not path.is_dir():
        raise UserInputError(f"{path}: no such experiment folder")
    try:
        space = read_space(path)
    except ExperimentError as e:
        raise UserInputError(str(e)) from e
    storage = storage_of(path)
    name_objectives(storage, [o["metric"] for o in space["objectives"]])
    return storage


def dashboard_command(experiment: str, port: int, host: str = "127.0.0.1") -> int:
    """Body of `tune-app dashboard`: serve optuna-dashboard until Ctrl-C."""
    try:
        from optuna_dashboard import run_server
    except ImportError as e:
        raise UserInputError(f"optuna-dashboard is not installed; {EXTRA}") from e
    storage = prepare(experiment)
    print(f"optuna-dashboard for {experiment}: http://{host}:{port}/dashboard/ (Ctrl-C stops it)")
    try:
        run_server(storage, host=host, port=port)
    except KeyboardInterrupt:
        return 0
    except OSError as e:  # port taken, or a host that cannot be bound
        raise UserInputError(f"--port {port}: cannot serve on {host}:{port}: {e}") from e
    return 0
