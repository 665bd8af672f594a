"""Before a GPU search starts: does each trial's estimated peak memory fit its GPU share?

Only `tune_app` talks to Ray: one probe task on a GPU of the cluster reports what the trials will
run on; `trainers.memory` estimates the trials from shapes.
"""

from __future__ import annotations

import itertools
from typing import Any

from search_spaces import SearchSpace
from tune_app.settings import UserInputError


def gpu_facts() -> dict[str, Any] | None:
    """Name, memory and native bf16 of the GPU this Ray task got (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return {"name": props.name, "bytes": props.total_memory, "bf16": native_bf16}


def probe_gpu(share: float) -> dict[str, Any] | None:
    import ray

    task = ray.remote(num_cpus=0, num_gpus=share)(gpu_facts)
    return ray.get(task.remote(), timeout=120)


# Settings that change a trial's peak memory: the model, the batch, how many tokens a step keeps,
# the precision, and the data the trial keeps on the device.
MEMORY_FIELDS = (
    "model",
    "batch_size",
    "precision",
    "mask_ratio",
    "mix_pass",
    "mix_mask_ratio",
    "ssl_pass",
    "epochs_ssl",
    "dataset",
    "data_dir",
    "labeled_fraction",
    "ssl_source",
    "unlabeled_fraction",
    "val_fraction",
)

# The TrialConfig fields `trainers.pipeline.load_splits` reads.
DATA_FIELDS = (
    "dataset",
    "data_dir",
    "val_fraction",
    "labeled_fraction",
    "ssl_source",
    "unlabeled_fraction",
    "label_noise",
    "seed",
)


def memory_bounds(space: SearchSpace) -> list[dict[str, Any]]:
    """The sampled values to estimate: `{}` (a baseline trial leaves searched settings at their
    defaults) and every combination of the bounding values (min and max, or each choice) of the
    searched settings in MEMORY_FIELDS."""
    params = [p for name, p in space.searched.items() if name in MEMORY_FIELDS]
    values = [[v for _, v in p.candidates()] for p in params]
    names = [p.name for p in params]
    combos = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    return [{}] + [c for c in combos if c]


def check_gpu_memory(space: SearchSpace, facts: dict[str, Any] | None = None) -> None:
    """Refuse (bad input, exit 2) a packing whose trials cannot fit their share of the GPU.

    The estimate covers every trial the search may sample: searched settings that change memory
    (a batch size, a model) are estimated at each of their bounds, and the largest counts.
    """
    from trainers.memory import packing_problem

    if space.gpu <= 0:
        return
    facts = facts if facts is not None else probe_gpu(space.gpu)
    if facts is None:  # GPUs declared without CUDA: trials fall back to the CPU (tune_app/trial.py)
        return
    worst: tuple[int, dict[str, Any], dict[str, int]] | None = None
    splits: dict[tuple, Any] = {}  # read each dataset variant once
    for sampled in memory_bounds(space):
        peaks = trial_peaks(space, sampled, facts, splits)
        if peaks is not None and (worst is None or max(peaks.values()) > worst[0]):
            worst = (max(peaks.values()), sampled, peaks)
    if worst is None:
        return
    _, sampled, peaks = worst
    problem = packing_problem(peaks, space.gpu, facts["bytes"], facts["name"])
    if problem:
        at = ", ".join(f"{k}={v}" for k, v in sampled.items())
        where = f" (at the searched {at})" if at else ""
        raise UserInputError(f"{space.source}: resources.gpu: {problem}{where}")


def trial_peaks(
    space: SearchSpace, sampled: dict[str, Any], facts: dict[str, Any], splits: dict[tuple, Any]
) -> dict[str, int] | None:
    """Estimated phase peaks of the trial `sampled` gives, or None for a combination of bounds
    no trial can have (settings that reject each other). `splits` caches the data read."""
    import torch

    from trainers.config import ConfigError
    from trainers.memory import phase_peaks
    from trainers.pipeline import load_splits

    try:
        config = space.trial_config(sampled, "mixtraining", None)
    except ConfigError:
        return None
    # The trainer's rule (trainers/runtime.py): `auto` is bf16 where the GPU runs it natively.
    bf16 = config.precision == "bf16" or (config.precision == "auto" and facts["bf16"])
    key = tuple(getattr(config, k) for k in DATA_FIELDS)
    if key not in splits:
        splits[key] = load_splits(config, torch.device("cpu"))
    return phase_peaks(config, splits[key], bf16)
