"""Smoke run on a real GPU; on a CUDA host: `pytest -m gpu tests/test_gpu_smoke.py`

ViT-T at the bundled batch (256) on synthetic CIFAR-shaped data, one SSL, one MIX and one SL
epoch: no device sync per step (`set_sync_debug_mode("warn")`), peak memory within the shape
estimate of trainers/memory.py, and a step's FLOPs counted on the GPU equal to the CPU's count.
CPU-only CI skips it. It has not run yet: this project's CI has no GPU.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import pytest
import torch

import trainers.pipeline
from trainers import TrialConfig
from trainers.data import Splits
from trainers.memory import CUDA_CONTEXT_BYTES, phase_peaks
from trainers.pipeline import Trainer
from trainers.runtime import resolve_runtime
from trainers.steps import Batch, count_step_gflops

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU; on a GPU host: pytest -m gpu tests/test_gpu_smoke.py",
    ),
]

TRAIN, STEPS_PER_EPOCH = 8192, 32  # at batch 256
SMOKE = {
    "model": "vit_tiny",
    "dataset": "cifar10",
    "epochs_ssl": 2,
    "epochs_sl": 2,
    "rho": 0.5,
    "batch_size": 256,
    "device": "cuda",
}


def synthetic_splits(device: torch.device, size: int = 32, classes: int = 10) -> Splits:
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, classes, (n,), generator=g)

    return Splits(
        train_x=images(TRAIN).to(device),
        train_y=labels(TRAIN).to(device),
        val_x=images(1024).to(device),
        val_y=labels(1024).to(device),
        test_x=images(1024),
        test_y=labels(1024),
        ssl_x=None,
        num_classes=classes,
        in_chans=3,
        image_size=size,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
    )


@pytest.fixture
def trainer(monkeypatch) -> Trainer:
    monkeypatch.setattr(trainers.pipeline, "load_splits", lambda c, d: synthetic_splits(d))
    config = TrialConfig.from_dict(SMOKE)
    return Trainer(config, resolve_runtime(config))


def test_smoke_run_has_no_sync_per_step_and_fits_its_memory_estimate(trainer: Trainer) -> None:
    assert trainer.data.steps("sl") == STEPS_PER_EPOCH
    torch.cuda.reset_peak_memory_stats()
    syncs = []
    torch.cuda.set_sync_debug_mode("warn")
    try:
        while trainer.epoch < len(trainer.phases):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trainer.run_epoch()
            syncs.append(sum("synchroniz" in str(w.message) for w in caught))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert max(syncs) < STEPS_PER_EPOCH // 4, f"device syncs per epoch: {syncs}"
    measured = torch.cuda.max_memory_allocated()
    peaks = phase_peaks(trainer.config, trainer.splits, trainer.rt.bf16)
    estimate = max(peaks.values()) - CUDA_CONTEXT_BYTES  # the allocator does not see the context
    assert 0.5 * estimate <= measured <= 1.1 * estimate, (measured, peaks)


def test_gpu_and_cpu_count_the_same_flops(trainer: Trainer) -> None:
    for kind in ("ssl", "sl", "mix"):
        batch = next(iter(trainer.data.epoch(kind, 0.5)))
        gpu = count_step_gflops(trainer.model, kind, batch, trainer.rt.autocast)
        cpu_batch = Batch(batch.x.cpu(), None if batch.y is None else batch.y.cpu())
        cpu_model = copy.deepcopy(trainer.model).cpu()
        cpu = count_step_gflops(cpu_model, kind, cpu_batch, contextlib.nullcontext)
        assert gpu == pytest.approx(cpu, rel=0.01), kind
