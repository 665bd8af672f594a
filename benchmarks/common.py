"""Timing helpers shared by the step-level benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from trainers.models import MixModel, create_model
from trainers.runtime import synchronize
from trainers.steps import Batch, step_loss


def fake_batch(
    batch: int, chans: int, size: int, classes: int = 10, seed: int = 0, device: str = "cpu"
) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randn(batch, chans, size, size, generator=g).to(device),
        torch.randint(0, classes, (batch,), generator=g).to(device),
    )


def median_seconds(
    fn: Callable[[], None], repeats: int, warmup: int = 2, device: str = "cpu"
) -> float:
    """Median wall-clock seconds of `fn()`; on a GPU the queue is drained around each timing."""
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(dev)
        start = time.perf_counter()
        fn()
        synchronize(dev)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_fn(model: MixModel, kind: str, batch: Batch, bf16: bool) -> Callable[[], None]:
    """One full training step (forward, backward, AdamW) of `kind`, as the pipeline runs it."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = step_loss(model, kind, batch, alpha=0.5)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def decoder_step_fn(model: MixModel, batch: Batch, bf16: bool) -> Callable[[], None]:
    """The decoder's own cost in a merged step: reconstruct + loss + backward on fixed feats."""
    with torch.no_grad():
        feats, _, _ = model.encode(batch.x, 0.0)

    def step() -> None:
        f = feats.detach().requires_grad_(True)
        with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=bf16):
            kept, mask, ids = model.mask_features(f, model.mask_ratio)
            loss = model.reconstruction_loss(batch.x, model.reconstruct(kept, ids), mask)
        loss.backward()

    return step


def build(name: str, size: int, chans: int, seed: int = 0, device: str = "cpu") -> MixModel:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=10, image_size=size, in_chans=chans)
    return model.to(device).train()
