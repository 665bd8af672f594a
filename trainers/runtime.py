"""Where and how a run executes: device, precision, threads. Resolved once per run."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from trainers.config import TrialConfig

# Presets for which bf16 autocast beat fp32 on a CPU with AMX (benchmarks/throughput.py,
# docs/benchmarks.md). Small models lose: the casts cost more than the matmuls save.
CPU_BF16_FASTER = frozenset({"vit_tiny", "resnet_micro", "resnet18"})


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    bf16: bool
    threads: int

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


def available_cpus() -> int:
    """CPUs this process may use (respects taskset/cgroups affinity, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity API
        return os.cpu_count() or 1


def cpu_has_amx() -> bool:
    """True when the CPU has AMX bf16 tiles (torch's capability string says only AVX512)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


def resolve_device(requested: str) -> torch.device:
    """The run's device. A CUDA run uses the *current* CUDA device (index included), which the
    caller selects with `torch.cuda.set_device` (tune_app/trial.py: the GPU Ray assigned)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch sees no CUDA device; use auto or cpu")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(requested)


def resolve_bf16(precision: str, model: str, device: torch.device) -> bool:
    """`auto`: bf16 on GPUs that run it natively; on CPU only where it measured faster.

    V100/T4 report bf16 support through emulation: slow, and attention falls back to the
    memory-hungry math kernel there, so only native support counts.
    """
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return model in CPU_BF16_FASTER and cpu_has_amx()


def apply_cuda_flags(device: torch.device, model: str, bf16: bool) -> None:
    """Process-wide CUDA speed settings: TF32 for fp32 matmuls/convolutions, cuDNN autotuning
    for CNNs (fixed input shapes, so the search pays once per shape)."""
    if device.type != "cuda":
        return
    if not bf16:  # TF32 keeps fp32 ranges with a 10-bit mantissa: the usual fp32 training mode
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    from trainers.models import model_family

    torch.backends.cudnn.benchmark = model_family(model) == "cnn"


def resolve_runtime(config: TrialConfig) -> Runtime:
    """Pick device, precision and thread count, and apply them to torch."""
    device = resolve_device(config.device)
    threads = config.num_threads or available_cpus()
    torch.set_num_threads(threads)
    bf16 = resolve_bf16(config.precision, config.model, device)
    apply_cuda_flags(device, config.model, bf16)
    return Runtime(device, bf16, threads)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest; a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def host(values: torch.Tensor) -> torch.Tensor:
    """Copy device values to the CPU: the run's only reads from the device, once per epoch
    (losses, eval counts, mixTrain bookkeeping); a read per step would stall a GPU."""
    return values.cpu()
