"""The Ray Tune trainable: one trial = one `trainers.run`, checkpointed every epoch.

Runs inside a Ray worker. The trial's settings are the space's fixed settings plus what the
searcher suggested (the knobs, or a baseline's pipeline and seed). A trial restored by Ray
(`FailureConfig` retry or `--resume`) continues after its last checkpointed epoch.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

import pyarrow.fs
import ray
import torch
from ray import tune

from trainers import TrialConfig, plan_for, run
from trainers.ssl_cache import SSLCache

STATE_FILE = "state.pt"
SSL_CACHE_DIR = "ssl_cache"  # in the experiment folder: every trial of the search reaches it


def trial_config(fixed: dict[str, Any], suggested: dict[str, Any]) -> TrialConfig:
    config = TrialConfig.from_dict({**fixed, **suggested})
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
    return config


def load_state() -> dict[str, Any] | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)


def ssl_cache() -> SSLCache | None:
    """The experiment's shared SSL cache, when Ray's storage is a folder this node can write
    (a local or NFS path; on an object store the trial trains its SSL phase itself)."""
    from ray.train._internal.session import get_storage  # Ray's own storage of this trial

    storage = get_storage()
    if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return SSLCache(os.path.join(storage.experiment_fs_path, SSL_CACHE_DIR))


def _maybe_crash(fault: tuple[int, str] | None, epoch: int) -> None:
    """Test-only fault injection: raise once after epoch `fault[0]` (marker file = "once")."""
    if fault and epoch == fault[0] and not os.path.exists(fault[1]):
        open(fault[1], "w").close()
        raise RuntimeError(f"injected test crash after epoch {epoch}")


def trainable(
    suggested: dict[str, Any], fixed: dict[str, Any], fault: tuple[int, str] | None = None
) -> None:
    """Ray function trainable; `fixed` and `fault` come through `tune.with_parameters`."""
    # Ray logs "Checkpoint successfully created" per epoch per trial at INFO: noise here.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    config = trial_config(fixed, suggested)
    planned = sum(epochs for _, epochs in plan_for(config))
    tags = {
        "pipeline": config.pipeline,
        "seed": config.seed,
        "epochs_planned": planned,
        "node_id": ray.get_runtime_context().get_node_id(),
        "gpu_ids": ",".join(map(str, ray.get_gpu_ids())),
    }

    def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, os.path.join(d, STATE_FILE))
            tune.report({**metrics, **tags}, checkpoint=tune.Checkpoint.from_directory(d))
        _maybe_crash(fault, metrics["epoch"])

    run(config, report, load_state(), ssl_cache())
