"""The driver's Ray: its environment (set before `ray` is first imported), joining or starting
it, whether a trial fits the cluster; and the fixed settings every trial starts from.

Imports no Ray at module level, so the commands' validation (`tune_app.search`) can use it
before Ray is imported.
"""

from __future__ import annotations

import logging
import os
import sys

from search_spaces import SearchSpace
from tune_app.settings import UserInputError

# Quiet, offline Ray. The old output engine is what honours CLIReporter's trimmed columns.
# Every epoch checkpoints, which makes Ray snapshot the experiment often by design (so a
# restore finds the newest checkpoint); its warning about that is noise for a small search.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AUTH_MODE": "disabled",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Starting a trial's W&B logging actor takes about a second, once per trial; Ray's
    # default 0.5 s "slow callback" warning would repeat that for every trial.
    "TUNE_WARN_THRESHOLD_S": "5",
    # Ray starts its workers at niceness 15, so every trial (and the step-cost calibration)
    # yields the CPU to any ordinary process on the machine. Trials run at the priority the
    # user gave `tune-app search` instead (`nice tune-app search` still lowers them). Only a
    # Ray this driver starts reads it.
    "RAY_worker_niceness": "0",
}
PARAM_COLUMNS = ("pipeline", "seed", "alpha", "rho", "lam", "anneal")
METRIC_COLUMNS = ("epoch", "phase")  # then the space's objectives (tune_app.progress)


def check_resources(space: SearchSpace) -> None:
    """One trial must fit on one node of the cluster Ray is connected to."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    best_cpu = max((n.get("CPU", 0) for n in nodes), default=0)
    best_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    if space.cpu > best_cpu or space.gpu > best_gpu:
        raise UserInputError(
            f"{space.source}: resources: a trial asks for cpu={space.cpu}, gpu={space.gpu} but "
            f"the largest node has {best_cpu:g} CPUs and {best_gpu:g} GPUs"
        )
    from tune_app.gpu_fit import check_gpu_memory

    check_gpu_memory(space)  # each trial's estimated peak memory against its GPU share


def set_ray_env() -> None:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if not sys.stderr.isatty():
        # A log file or CI: the lines Ray forwards from trial processes, behind their
        # "(trainable pid=...)" prefix, come without terminal colour codes.
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")


def ray_init_address(address: str | None) -> str:
    """What `ray.init` is given: `--address` as typed, else "local".

    Without an address, `ray.init()` joins whatever cluster `RAY_ADDRESS` or a `ray start` left
    on the machine names; "local" always starts a private Ray for this driver alone.
    """
    return address or "local"


def start_ray(address: str | None) -> bool:
    """Join `address` or start a private local Ray; True when we started it (and must stop it).

    Raises:
        UserInputError: `--address` names no reachable cluster.
    """
    set_ray_env()
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=ray_init_address(address),
            include_dashboard=False,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, ValueError) as e:  # no cluster there, or a malformed address
        raise UserInputError(
            f"--address {address}: cannot join a Ray cluster ({e}); start one with "
            "`ray start --head`, or leave --address out to run on this machine"
        ) from e
    return True
