"""Helpers shared by the benchmarks (and the tests of them): a seeded model and batch, the
median seconds of a step, splits of a given shape on `meta`.

The step timing itself lives in `trainers.calibrate` (the search calibrates step costs with
it); `train_step_fn` is re-exported here for the benchmarks.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from trainers.calibrate import step_times, train_step_fn
from trainers.data import Splits
from trainers.models import MixModel, create_model
from trainers.steps import Batch

__all__ = [
    "build",
    "decoder_step_fn",
    "fake_batch",
    "median_seconds",
    "shaped_splits",
    "train_step_fn",
]


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
    return statistics.median(step_times(fn, repeats, warmup, device))


def build(
    name: str, size: int, chans: int, seed: int = 0, classes: int = 10, device: str = "cpu"
) -> MixModel:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=classes, image_size=size, in_chans=chans)
    return model.to(device).train()


def shaped_splits(train: int, val: int, ssl: int, chans: int, size: int, classes: int) -> Splits:
    """Splits with the given sizes on `meta`: what the memory estimate
    (`trainers.memory.phase_peaks`) needs, without the dataset."""

    def images(n: int) -> torch.Tensor:
        return torch.empty(n, chans, size, size, dtype=torch.uint8, device="meta")

    def labels(n: int) -> torch.Tensor:
        return torch.empty(n, dtype=torch.long, device="meta")

    return Splits(
        train_x=images(train),
        train_y=labels(train),
        val_x=images(val),
        val_y=labels(val),
        test_x=images(0),
        test_y=labels(0),
        ssl_x=images(ssl) if ssl else None,
        num_classes=classes,
        in_chans=chans,
        image_size=size,
        mean=(0.5,) * chans,
        std=(0.25,) * chans,
    )


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
