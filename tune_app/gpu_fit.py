"""Before a GPU search starts: does each trial's estimated peak memory fit its GPU share?

Only `tune_app` talks to Ray: one probe task on a GPU of the cluster reports what the trials will
run on; `trainers.memory` estimates the trials from shapes.
"""

from __future__ import annotations

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


def check_gpu_memory(space: SearchSpace, facts: dict[str, Any] | None = None) -> None:
    """Refuse (bad input, exit 2) a packing whose trials cannot fit their share of the GPU."""
    from trainers.memory import packing_problem, phase_peaks
    from trainers.pipeline import load_splits

    if space.gpu <= 0:
        return
    facts = facts if facts is not None else probe_gpu(space.gpu)
    if facts is None:  # GPUs declared without CUDA: trials fall back to the CPU (tune_app/trial.py)
        return
    import torch

    config = space.trial_config({}, "mixtraining", None)
    # The trainer's rule (trainers/runtime.py): `auto` is bf16 where the GPU runs it natively.
    bf16 = config.precision == "bf16" or (config.precision == "auto" and facts["bf16"])
    peaks = phase_peaks(config, load_splits(config, torch.device("cpu")), bf16)
    problem = packing_problem(peaks, space.gpu, facts["bytes"], facts["name"])
    if problem:
        raise UserInputError(f"{space.source}: resources.gpu: {problem}")
