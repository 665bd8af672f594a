"""One loss function for every step kind, the batch sources, and FLOP counting per step kind."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.mixup import mixup_target
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from trainers.accel import InputMixer, MixItems, box_cells, cells_to_pixels, cutmix_box
from trainers.data import Splits, augment, normalize
from trainers.models import MixModel
from trainers.plan import mix_images


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the run stops so the trial is marked errored."""


@dataclass
class Batch:
    x: Tensor  # float [B, C, H, W], augmented and normalised (mixed with SSL images in MIX)
    y: Tensor | None  # int64 [B]; None for SSL-only batches
    items: MixItems | None = None  # mixTrain composites in the SL phase (trainers/accel.py)
    y2: Tensor | None = None  # int64 [B], labels of each item's second constituent
    mode: str = "none"  # sl_accel that built the batch
    y_soft: Tensor | None = None  # float [B, classes], mixup's targets (replace y in the loss)


def step_loss(model: MixModel, kind: str, batch: Batch, alpha: float) -> dict[str, Tensor]:
    """The loss of one step of `kind` (ssl | sl | mix). Always returns `"loss"`.

    MIX runs the backbone ONCE (`mix_forward`): its features feed both the decoder and the
    classifier, and the loss is `alpha * l_ssl + (1 - alpha) * l_sl`.
    """
    if kind == "ssl":
        loss_ssl = model.ssl_loss(batch.x)
        return {"loss": loss_ssl, "loss_ssl": loss_ssl}
    if kind == "sl" and batch.items is not None:
        return composite_loss(model, batch)
    target = batch.y if batch.y_soft is None else batch.y_soft  # soft: cross-entropy on probs
    if kind == "sl":
        loss_sl = F.cross_entropy(model.sl_logits(batch.x), target)
        return {"loss": loss_sl, "loss_sl": loss_sl}
    if kind == "mix":
        loss_ssl, logits = model.mix_forward(batch.x)
        loss_sl = F.cross_entropy(logits, target)
        loss = alpha * loss_ssl + (1.0 - alpha) * loss_sl
        return {"loss": loss, "loss_ssl": loss_ssl, "loss_sl": loss_sl}
    raise ValueError(f"unknown step kind {kind!r}")


def composite_loss(model: MixModel, batch: Batch) -> dict[str, Tensor]:
    """`r * CE(., y_a) + (1 - r) * CE(., y_b)` per item, from ONE trunk pass.

    CutMix uses split propagation: the features of a's box cells and of the rest are pooled
    and classified separately, each scored against its own label. Also returns per-item losses
    (the constituents' losses estimated on the composite) for selective mixing.
    """
    items = batch.items
    if batch.mode == "cutmix":
        cells = model.cell_features(model.encode(batch.x, 0.0)[0])  # [B, G, D]
        in_a = items.cells.to(cells.dtype)[..., None]
        pooled_a = (cells * in_a).sum(1) / in_a.sum(1).clamp_min(1)
        pooled_b = (cells * (1 - in_a)).sum(1) / (1 - in_a).sum(1).clamp_min(1)
        logits_a, logits_b = model.classify_pooled(pooled_a), model.classify_pooled(pooled_b)
    else:
        logits_a = logits_b = model.sl_logits(batch.x)
    loss_a = F.cross_entropy(logits_a, batch.y, reduction="none")
    loss_b = F.cross_entropy(logits_b, batch.y2, reduction="none")
    r = items.r.to(loss_a.device, loss_a.dtype)
    loss = (r * loss_a + (1 - r) * loss_b).mean()
    return {
        "loss": loss,
        "loss_sl": loss,
        "item_loss_a": loss_a.detach(),
        "item_loss_b": loss_b.detach(),
        "correct_a": logits_a.argmax(1) == batch.y,
    }


class BatchSource:
    """Epochs of batches from in-memory uint8 tensors: index gather + batched augmentation.

    Training drops the last incomplete batch so every step of a kind has the same cost (and the
    same FLOP count); a pool smaller than one batch gives a single full-pool step.
    """

    def __init__(self, splits: Splits, batch_size: int, generator: torch.Generator) -> None:
        self.splits = splits
        self.batch_size = batch_size
        self.g = generator
        self.ssl_pool = splits.ssl_x if splits.ssl_x is not None else splits.train_x

    def steps(self, kind: str) -> int:
        n = len(self.ssl_pool) if kind == "ssl" else len(self.splits.train_x)
        return max(1, n // self.batch_size)

    def _prepare(self, x_uint8: Tensor) -> Tensor:
        x = augment(x_uint8, self.g)
        return normalize(x, self.splits.mean, self.splits.std)

    def _indices(self, n: int) -> Iterator[Tensor]:
        perm = torch.randperm(n, generator=self.g)
        size = min(self.batch_size, n)
        for start in range(0, max(1, n // self.batch_size) * size, size):
            yield perm[start : start + size]

    def epoch(self, kind: str, lam: float) -> Iterator[Batch]:
        """The batches of one epoch of `kind`. MIX mixes in SSL images when they differ."""
        s = self.splits
        if kind == "ssl":
            for idx in self._indices(len(self.ssl_pool)):
                yield Batch(self._prepare(self.ssl_pool[idx.to(self.ssl_pool.device)]), None)
            return
        for idx in self._indices(len(s.train_x)):
            idx = idx.to(s.train_x.device)
            x = self._prepare(s.train_x[idx])
            if kind == "mix" and s.ssl_x is not None:
                other = torch.randint(len(s.ssl_x), (len(idx),), generator=self.g)
                x = mix_images(x, self._prepare(s.ssl_x[other.to(s.ssl_x.device)]), lam)
            yield Batch(x, s.train_y[idx])


def mixed_batches(source: BatchSource, mixer: InputMixer, grid: tuple[int, int]) -> Iterator[Batch]:
    """The SL epoch as mixTrain items (trainers/accel.py), every item kept (no drop-last)."""
    s, g = source.splits, source.g
    a, b, r = mixer.epoch_items(g)
    for start in range(0, len(a), source.batch_size):
        ia, ib, ir = (
            a[start : start + source.batch_size],
            b[start : start + source.batch_size],
            r[start : start + source.batch_size],
        )
        dev = s.train_x.device
        xa, xb = source._prepare(s.train_x[ia.to(dev)]), source._prepare(s.train_x[ib.to(dev)])
        cells = None
        if mixer.mode == "cutmix":
            corner, size = cutmix_box(grid, mixer.share, len(ia), g)
            cells = box_cells(corner, size, grid) | (ia == ib)[:, None]  # unmixed: all of a
            pixels = cells_to_pixels(cells, grid, s.image_size).to(dev)
            x = torch.where(pixels, xa, xb)
            ir = pixels.float().mean(dim=(1, 2, 3)).cpu()  # a's exact pixel share
        else:
            x = ir.to(dev)[:, None, None, None] * xa + (1 - ir.to(dev))[:, None, None, None] * xb
        items = MixItems(ia, ib, ir, cells.to(dev) if cells is not None else None)
        yield Batch(x, s.train_y[ia.to(dev)], items, s.train_y[ib.to(dev)], mixer.mode)


def count_step_gflops(
    model: MixModel, kind: str, batch: Batch, autocast: Callable[[], AbstractContextManager[Any]]
) -> float:
    """GFLOPs of one forward+backward step of `kind`, by torch's FLOP counter.

    Counted on a copy of the model with the RNG forked, so counting changes neither the
    weights, BatchNorm statistics nor the random stream of the run it measures.
    """
    shadow = copy.deepcopy(model)
    devices = [batch.x.device] if batch.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False) as counter:
        with autocast():
            loss = step_loss(shadow, kind, batch, alpha=0.5)["loss"]
        loss.backward()
    return counter.get_total_flops() / 1e9


class SeededMixup(Mixup):
    """timm's `Mixup` in batch mode, mixup only (no CutMix, no label smoothing), seeded by the run.

    timm draws lam ~ Beta(alpha, alpha) from numpy's *global* RNG, which no checkpoint holds and
    which other code may also draw from. Here each batch's lam comes from a numpy Generator
    seeded by one draw of the run's torch generator (the data generator, saved in every
    checkpoint), so a run is reproducible and a resumed run mixes exactly as an uninterrupted
    one. The mixing itself (each image with the batch's reversed order, `x.flip(0)`) and the
    soft targets are timm's.
    """

    def __init__(self, alpha: float, num_classes: int, generator: torch.Generator) -> None:
        super().__init__(
            mixup_alpha=alpha,
            cutmix_alpha=0.0,
            prob=1.0,
            mode="batch",
            label_smoothing=0.0,
            num_classes=num_classes,
        )
        self.g = generator

    def _params_per_batch(self) -> tuple[float, bool]:
        seed = int(torch.randint(2**62, (1,), generator=self.g))
        return float(np.random.default_rng(seed).beta(self.mixup_alpha, self.mixup_alpha)), False

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """x: [B, C, H, W] (mixed in place), target: int64 [B] -> (x, soft targets [B, K]).

        timm's own `__call__` asserts an even batch; in an odd one (a pool smaller than the
        batch size) the middle image is paired with itself, i.e. left unmixed.
        """
        lam = self._mix_batch(x)
        return x, mixup_target(target, self.num_classes, lam, self.label_smoothing)


def with_mixup(batches: Iterator[Batch], mixup: SeededMixup) -> Iterator[Batch]:
    """Zhang et al.'s mixup on supervised batches: mixed images, soft targets in `y_soft`."""
    for b in batches:
        x, soft = mixup(b.x, b.y)
        yield Batch(x, b.y, y_soft=soft.to(x.device))
