"""Timing helpers shared by the step-level benchmarks.

The step timing itself lives in `trainers.calibrate` (the search calibrates step costs with
it); it is re-exported here for the benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainers.calibrate import build, fake_batch, median_seconds, train_step_fn
from trainers.models import MixModel
from trainers.steps import Batch

__all__ = ["build", "decoder_step_fn", "fake_batch", "median_seconds", "train_step_fn"]


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
