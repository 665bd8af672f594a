"""Smoke run on a real GPU; on a CUDA host: `pytest -m gpu -rs tests/trainers/test_pipeline_gpu.py`

ViT-T at the bundled batch (256) on synthetic CIFAR-shaped data, one SSL, one MIX and one SL
epoch: no device sync per step (`set_sync_debug_mode("warn")`), peak memory within the shape
estimate of trainers/memory.py, and a step's FLOPs counted on the GPU equal to the CPU's count.
Then four separate processes packed on one GPU as the bundled `vit_tiny_cifar10` space packs its
trials (`gpu: 0.25`, its batch and precision), each capped at its share: all four finish, each
within its estimate, none syncing per step (harness: tests/packed_trials.py, proven on the CPU
by tests/test_packed_trials.py). CPU-only CI skips this file. It has not run yet: this project's
CI has no GPU.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import warnings

import pytest
import torch

import trainers.pipeline
from benchmarks.common import shaped_splits
from search_spaces import load_space
from tests.packed_trials import run_packed, synthetic_splits
from trainers import TrialConfig
from trainers.memory import CUDA_CONTEXT_BYTES, FRAGMENTATION, packing_problem, phase_peaks
from trainers.pipeline import Trainer
from trainers.runtime import resolve_bf16, resolve_runtime
from trainers.steps import Batch, count_step_gflops
from tune_app.gpu_fit import gpu_facts

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU; on a GPU host: "
        "pytest -m gpu -rs tests/trainers/test_pipeline_gpu.py",
    ),
]

TRAIN, STEPS_PER_EPOCH = 8192, 32  # at batch 256
CIFAR = {"train": TRAIN, "size": 32, "chans": 3, "classes": 10}  # synthetic, CIFAR-10's shape
BUNDLED = "vit_tiny_cifar10"  # the space whose packing the four-process test reproduces
SMOKE = {
    "model": "vit_tiny",
    "dataset": "cifar10",
    "epochs_ssl": 2,
    "epochs_sl": 2,
    "rho": 0.5,
    "batch_size": 256,
    "device": "cuda",
}


@pytest.fixture
def trainer(monkeypatch) -> Trainer:
    monkeypatch.setattr(
        trainers.pipeline, "load_splits", lambda c, d: synthetic_splits(d, TRAIN, size=32)
    )
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
    assert within_estimate(measured, estimate), (measured, peaks)


def within_estimate(measured: float, estimate: float) -> bool:
    """Measured peak no more than the estimate plus the headroom a packing keeps above it, and
    not so far below that the estimate would waste half the GPU."""
    return 0.5 * estimate <= measured <= (1 + FRAGMENTATION) * estimate


def test_gpu_and_cpu_count_the_same_flops(trainer: Trainer) -> None:
    for kind in ("ssl", "sl", "mix"):
        batch = next(iter(trainer.data.epoch(kind, 0.5)))
        gpu = count_step_gflops(trainer.model, kind, batch, trainer.rt.autocast)
        cpu_batch = Batch(batch.x.cpu(), None if batch.y is None else batch.y.cpu())
        cpu_model = copy.deepcopy(trainer.model).cpu()
        cpu = count_step_gflops(cpu_model, kind, cpu_batch, contextlib.nullcontext)
        assert gpu == pytest.approx(cpu, rel=0.01), kind


def bundled_packing() -> tuple[TrialConfig, float]:
    """The bundled space's trial (its model, batch and precision) over the smoke run's short
    plan (2 + 2 epochs, one of them MIX), and the GPU share each trial asks for."""
    space = load_space(BUNDLED, {"trainer.data_dir": "/unused"})  # the data here is synthetic
    config = space.trial_config({"rho": 0.5}, "mixtraining", None)
    return config.replace(epochs_ssl=2, epochs_sl=2, device="cuda"), space.gpu


def test_four_packed_trials_at_the_bundled_batch_fit_and_do_not_sync_per_step() -> None:
    config, share = bundled_packing()
    bf16 = resolve_bf16(config.precision, config.model, torch.device("cuda"))
    facts = gpu_facts()
    shape = shaped_splits(TRAIN, TRAIN // 8, 0, CIFAR["chans"], CIFAR["size"], CIFAR["classes"])
    problem = packing_problem(
        phase_peaks(config, shape, bf16), share, facts["bytes"], facts["name"]
    )
    if problem:
        pytest.skip(f"{BUNDLED}'s packing does not fit this GPU (a search refuses it): {problem}")
    gc.collect()
    torch.cuda.empty_cache()  # blocks this process cached in the tests above would crowd them
    results = run_packed(config.to_dict(), share, CIFAR)
    assert len(results) == round(1 / share) == 4
    assert not [r["error"] for r in results if "error" in r]  # no out-of-memory, no crash
    for r in results:
        assert r["bf16"] == bf16
        assert r["steps"] == [STEPS_PER_EPOCH] * 3, r  # SSL, MIX and SL epochs
        assert max(r["syncs"]) < STEPS_PER_EPOCH // 4, f"device syncs per epoch: {r['syncs']}"
        assert within_estimate(r["peak_gb"], r["estimate_gb"]), r
