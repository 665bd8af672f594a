"""The Ray pieces every phase of an experiment uses: the trainable with its resources, the
trial slots, the W&B callback, and the step-cost calibration run on each node type.

The controller that puts them together is `tune_app.experiment`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from ray.tune.experiment import Trial

from search_spaces import SearchSpace
from trainers import SetupError
from tune_app.settings import UserInputError, say
from tune_app.suggestion import fixed_settings
from tune_app.trial import trainable

if TYPE_CHECKING:
    from tune_app.calibration import Tables

MAX_FAILURES = 2  # a crashed trial is retried from its last checkpoint this many times
# Test-only: crash each trial once after epoch N (the marker file makes it "once").
CRASH_AT_EPOCH_ENV, CRASH_MARKER_ENV = "TUNE_APP_TEST_CRASH_AT_EPOCH", "TUNE_APP_TEST_CRASH_MARKER"
CALIBRATION_STEPS_ENV = "TUNE_APP_CALIBRATION_STEPS"


def trial_dirname(trial: Trial) -> str:
    return trial.trial_id  # short, stable folder names inside the experiment


def injected_fault() -> tuple[int, str] | None:
    at, marker = os.environ.get(CRASH_AT_EPOCH_ENV), os.environ.get(CRASH_MARKER_ENV)
    return (int(at), marker) if at and marker else None


def make_trainable(space: SearchSpace, step_costs: Tables | None = None) -> Any:
    fn = tune.with_parameters(
        trainable, fixed=fixed_settings(space), fault=injected_fault(), step_costs=step_costs
    )
    return tune.with_resources(fn, {"cpu": space.cpu, "gpu": space.gpu})


def slots(space: SearchSpace) -> int:
    """How many trials run at once: the concurrency limit, or fewer where resources end."""
    resources = ray.cluster_resources()
    fit = [resources.get("CPU", 0) / space.cpu] if space.cpu else []
    fit += [resources.get("GPU", 0) / space.gpu] if space.gpu else []
    return max(1, min([space.max_concurrent, *(int(f) for f in fit)]))


def trial_nodes(space: SearchSpace) -> list[str]:
    """Ids of the alive nodes whose resources can hold one trial (the others never run one)."""
    return sorted(
        n["NodeID"]
        for n in ray.nodes()
        if n.get("Alive")
        and n["Resources"].get("CPU", 0) >= space.cpu
        and n["Resources"].get("GPU", 0) >= space.gpu
    )


def pinned(node: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node, soft=False)


def gather(refs: list[Any]) -> list[Any]:
    """`ray.get`, raising a task's own error without Ray's wrapper."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, Exception):
            raise e.cause from None
        raise


def probe_node_types(space: SearchSpace) -> dict[str, str]:
    """{node id: hardware key} of every node a trial can run on, from a tiny task pinned to
    each. It takes no CPU (it must not wait behind anything) but the trial's GPU share, so it
    sees the device a trial would."""
    from trainers.calibrate import run_hardware_key
    from tune_app.calibration import calibration_config
    from tune_app.trial import on_slot

    config = calibration_config(fixed_settings(space))
    task = ray.remote(num_cpus=0, num_gpus=space.gpu, max_retries=0)(on_slot(run_hardware_key))
    nodes = trial_nodes(space)
    keys = gather([task.options(scheduling_strategy=pinned(n)).remote(config) for n in nodes])
    return dict(zip(nodes, keys, strict=True))


def on_trial_slots(space: SearchSpace) -> Callable[..., list[Any]]:
    """`trainers.calibrate.calibrate` on each of the given nodes at once, as Ray tasks holding
    one trial's resources: where a trial would run (the driver of a cluster may have no GPU, or
    another CPU). Nodes of different types are different machines, so none slows another."""
    from trainers.calibrate import calibrate
    from tune_app.trial import on_slot

    task = ray.remote(num_cpus=space.cpu, num_gpus=space.gpu, max_retries=0)(on_slot(calibrate))

    def measure(nodes: list[str], *args: Any, **kwargs: Any) -> list[Any]:
        return gather([task.options(scheduling_strategy=pinned(n)).remote(*args, **kwargs)
                       for n in nodes])  # fmt: skip

    return measure


def step_costs(space: SearchSpace, experiment: Path) -> Tables:
    """The experiment's step-cost tables by node type: one measured now for each node type of
    the cluster without one (before any trial runs, so nothing else competes), the others read
    back from calibration.json (--resume, tune-app confirm)."""
    from tune_app.calibration import busy_warnings, experiment_calibrations, node_types, tables

    fixed = fixed_settings(space)
    try:
        types = node_types(probe_node_types(space))
        calibrations = experiment_calibrations(
            space,
            fixed,
            experiment,
            types,
            on_trial_slots(space),
            steps=calibration_steps(),
            before=calibrating,
        )
    except (SetupError, ValueError) as e:  # missing data or device, unreadable calibration.json
        raise UserInputError(f"{space.source}: step-cost calibration: {e}") from e
    for warning in busy_warnings(calibrations):
        say(f"tune-app search: {warning}")
    return tables(calibrations)


def calibration_steps() -> int | None:
    """Steps measured per step kind: `TUNE_APP_CALIBRATION_STEPS` (a developer's setting: the
    test suite's searches need a table, not a precise one), else the calibration's default."""
    value = os.environ.get(CALIBRATION_STEPS_ENV)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UserInputError(f"{CALIBRATION_STEPS_ENV}={value!r}: a whole number >= 1 is needed")
    return int(value)


def calibrating(keys: list[str]) -> None:
    say(f"tune-app search: calibrating step costs (calibration.json) for {len(keys)} node "
        f"type(s): {'; '.join(keys)}")  # fmt: skip


def callbacks(space: SearchSpace, experiment: Path, wandb_mode: str) -> list[tune.Callback]:
    if wandb_mode == "disabled":
        return []
    from tune_app.wandb_log import TrialLogger

    w = space.wandb
    return [
        TrialLogger(
            fixed=fixed_settings(space),
            experiment=experiment,
            mode=wandb_mode,
            project=w.get("project") or "tune-app",
            group=w.get("group") or experiment.name,
            entity=w.get("entity"),
            tags=tuple(w.get("tags") or ()),
        )
    ]
