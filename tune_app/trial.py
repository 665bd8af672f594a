"""The Ray Tune trainable: one trial = one `trainers.run`, checkpointed every epoch.

Runs inside a Ray worker. The trial's settings are the space's fixed settings plus what the
searcher suggested (the knobs, or a baseline's pipeline and seed). A trial restored by Ray
(`FailureConfig` retry or `--resume`) continues after its last checkpointed epoch.

Ray retries every error alike. A failure that would repeat (a non-finite loss, data or
settings the run rejects, an unreadable checkpoint) is recorded in the trial's folder, and the
retry that finds the record fails at once with the same message instead of training again.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.fs
import ray
import torch
from ray import tune

from trainers import ConfigError, NonFiniteLossError, SetupError, TrialConfig, plan_for, run
from trainers.calibrate import run_hardware_key
from trainers.runtime import resolve_device
from trainers.ssl_cache import SSLCache
from tune_app.calibration import table_for
from tune_app.checkpoints import CheckpointError, load_state, recorded_epoch
from tune_app.suggestion import suggested_config

STATE_FILE = "state.pt"
SSL_CACHE_DIR = "ssl_cache"  # in the experiment folder: every trial of the search reaches it
# Errors that the same config and checkpoint raise again on every attempt.
DETERMINISTIC = (NonFiniteLossError, SetupError, ConfigError, CheckpointError)
FAILED_FILE = "deterministic_failure.txt"
T = TypeVar("T")


class RepeatedFailure(RuntimeError):
    """A retry of a trial whose previous attempt failed in a way that would repeat."""


def failure_record() -> Path:
    """Where an attempt records a deterministic failure for the attempts after it."""
    return Path(tune.get_context().get_trial_dir()) / FAILED_FILE


def fail_if_failed_before(record: Path) -> None:
    if record.exists():
        raise RepeatedFailure(
            f"{record.read_text()}\n(not retried: the previous attempt failed the same way)"
        )


def trial_config(fixed: dict[str, Any], suggested: dict[str, Any]) -> TrialConfig:
    return on_assigned_gpu(suggested_config(fixed, suggested)[0])


def on_assigned_gpu(config: TrialConfig) -> TrialConfig:
    """Make the GPU Ray assigned to this worker torch's current device (capped at the worker's
    share of it), or fall back to the CPU when Ray assigned a GPU torch cannot see.

    Every Ray task that runs on a trial's slot goes through here, not only the trial: under
    RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES a worker sees every GPU of its node, and
    without this the step-cost calibration and the node-type probe would measure GPU 0.
    """
    gpus = ray.get_gpu_ids()
    if gpus and not torch.cuda.is_available() and config.device == "auto":
        # Ray scheduled a GPU that torch cannot use (no driver, or GPUs declared by hand):
        # run on the CPU rather than fail, and say so in the trial's log.
        print(
            f"tune-app: Ray assigned GPU(s) {gpus} but torch sees no CUDA device; "
            "running this trial on the CPU",
            file=sys.stderr,
        )
        config = config.replace(device="cpu")
    elif gpus and config.device != "cpu" and torch.cuda.is_available():
        # (without CUDA an explicit `device: cuda` fails in the trainer with a clear message)
        torch.cuda.set_device(local_gpu_index(gpus, os.environ.get("CUDA_VISIBLE_DEVICES")))
        cap_gpu_memory(ray.get_runtime_context().get_assigned_resources().get("GPU", 1.0))
    return config


def on_slot(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(config, ...)` run with `config` placed by `on_assigned_gpu` (for a Ray task)."""

    @functools.wraps(fn)
    def placed(config: TrialConfig, *args: Any, **kwargs: Any) -> T:
        return fn(on_assigned_gpu(config), *args, **kwargs)

    return placed


def cap_gpu_memory(share: float) -> None:
    """Cap this trial's allocator at its GPU share: fractional GPUs share memory unguarded, and
    without a cap the trial that overshoots makes its *neighbour's* next allocation fail."""
    if share < 1.0:
        torch.cuda.set_per_process_memory_fraction(share, torch.cuda.current_device())


def gpu_memory_metrics(device: torch.device) -> dict[str, float]:
    """`gpu_mem_peak_gb`: the trial's peak allocated GPU memory so far (nothing on a CPU)."""
    if device.type != "cuda":
        return {}
    return {"gpu_mem_peak_gb": torch.cuda.max_memory_allocated(device) / 1024**3}


def local_gpu_index(assigned: Sequence[int | str], visible: str | None) -> int:
    """torch's index of the first GPU Ray assigned to this worker.

    Ray reports GPU ids as listed in CUDA_VISIBLE_DEVICES when that was set (by Ray itself,
    which normally exposes only the assigned GPUs, so index 0), and as physical ids otherwise.
    With RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES the worker sees every GPU: the index is
    the id's position in CUDA_VISIBLE_DEVICES, or the id itself when that variable is unset.
    """
    first = str(assigned[0])
    if visible is None:
        return int(first)
    listed = [v.strip() for v in visible.split(",") if v.strip()]
    if first not in listed:
        raise RuntimeError(f"Ray assigned GPU {first} but CUDA_VISIBLE_DEVICES={visible!r}")
    return listed.index(first)


def restored_state() -> tuple[dict[str, Any] | None, int | None]:
    """The state Ray resumes this trial from (None: a fresh start), and, for a checkpoint
    `--resume` put back in place of one Ray deleted, the epoch after which the trial reports
    its rows again (else None)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None, None
    with checkpoint.as_directory() as d:
        # tensors and plain values only
        return load_state(os.path.join(d, STATE_FILE)), recorded_epoch(d)


def ssl_cache() -> SSLCache | None:
    """The experiment's shared SSL cache, when Ray's storage is a folder this node can write
    (a local or NFS path; on an object store the trial trains its SSL phase itself)."""
    storage = tune.get_context().get_storage()  # Ray's own storage of this trial
    if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return SSLCache(os.path.join(storage.experiment_fs_path, SSL_CACHE_DIR))


def _maybe_crash(fault: tuple[int, str] | None, epoch: int) -> None:
    """Test-only fault injection: raise once after epoch `fault[0]` (marker file = "once")."""
    if fault and epoch == fault[0] and not os.path.exists(fault[1]):
        open(fault[1], "w").close()
        raise RuntimeError(f"injected test crash after epoch {epoch}")


def trainable(
    suggested: dict[str, Any],
    fixed: dict[str, Any],
    fault: tuple[int, str] | None = None,
    step_costs: dict[str, dict[str, float]] | None = None,
) -> None:
    """Ray function trainable; `fixed`, `fault` and `step_costs` (the experiment's calibrated
    seconds per step kind, one table per node type: `tune_app.calibration`) come through
    `tune.with_parameters`."""
    # Ray logs "Checkpoint successfully created" per epoch per trial at INFO: noise here.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    record = failure_record()
    fail_if_failed_before(record)
    try:
        run_trial(suggested, fixed, fault, step_costs)
    except DETERMINISTIC as e:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{type(e).__name__}: {e}")
        raise


def run_trial(
    suggested: dict[str, Any],
    fixed: dict[str, Any],
    fault: tuple[int, str] | None,
    step_costs: dict[str, dict[str, float]] | None,
) -> None:
    """One attempt: build the config, resume from Ray's checkpoint if any, train, report."""
    config = trial_config(fixed, suggested)
    planned = sum(epochs for _, epochs in plan_for(config))
    node = ray.get_runtime_context().get_node_id()
    node_type = run_hardware_key(config)  # this node's, as the trial runs: its table's key
    costs = None if step_costs is None else table_for(step_costs, node_type, node)
    tags = {
        "pipeline": config.pipeline,
        "seed": config.seed,
        "epochs_planned": planned,
        "node_id": node,
        "node_type": node_type,
        "gpu_ids": ",".join(map(str, ray.get_gpu_ids())),
    }

    def report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        result = {**metrics, **gpu_memory_metrics(resolve_device(config.device)), **tags}
        if state is None:  # an epoch the checkpoint cadence skips
            tune.report(result)
        else:
            with tempfile.TemporaryDirectory() as d:
                torch.save(state, os.path.join(d, STATE_FILE))
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))
        _maybe_crash(fault, metrics["epoch"])

    state, recorded = restored_state()
    run(config, report, state, costs, ssl_cache(), recorded)
