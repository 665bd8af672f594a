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
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from trainers.accel import InputMixer, MixItems, box_cells, cells_to_pixels, cutmix_box
from trainers.data import Splits, apply_augment, augment_params, channel_constants, normalize
from trainers.models import MixModel
from trainers.plan import mix_images


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
    same FLOP count); a pool smaller than one batch gives a single full-pool step. An epoch's
    indices and augmentation draws come from the CPU generator up front and reach the data's
    device in one copy, so a GPU step never waits on the host.
    """

    def __init__(self, splits: Splits, batch_size: int, generator: torch.Generator) -> None:
        self.splits = splits
        self.batch_size = batch_size
        self.g = generator
        self.ssl_pool = splits.ssl_x if splits.ssl_x is not None else splits.train_x
        self.device = splits.train_x.device
        self.mean, self.std = channel_constants(splits.mean, splits.std, self.device)

    def steps(self, kind: str) -> int:
        n = len(self.ssl_pool) if kind == "ssl" else len(self.splits.train_x)
        return max(1, n // self.batch_size)

    def _prepare(self, x_uint8: Tensor, params: Tensor) -> Tensor:
        """x_uint8 [B, C, H, W] with its `draws` rows 1..3 (crop offsets, flip) -> normalised."""
        x = apply_augment(x_uint8, params[1:3], params[3].bool())
        return normalize(x, self.mean, self.std)

    def draws(self, idx: Tensor) -> Tensor:
        """[4, n] int64 on the device: sample indices `idx` (CPU), crop offsets (2 rows), flip.

        One host->device copy for everything the epoch draws for these samples.
        """
        offsets, mirrored = augment_params(len(idx), self.g)
        return torch.cat([idx[None], offsets, mirrored[None].long()]).to(self.device)

    def _order(self, n: int) -> Tensor:
        """The epoch's sample indices, truncated to whole batches (drop-last)."""
        perm = torch.randperm(n, generator=self.g)
        return perm[: max(1, n // self.batch_size) * min(self.batch_size, n)]

    def epoch(self, kind: str, lam: float) -> Iterator[Batch]:
        """The batches of one epoch of `kind`. MIX mixes in SSL images when they differ."""
        s = self.splits
        pool = self.ssl_pool if kind == "ssl" else s.train_x
        plan = self.draws(self._order(len(pool)))
        other = None
        if kind == "mix" and s.ssl_x is not None:
            other = self.draws(torch.randint(len(s.ssl_x), (plan.shape[1],), generator=self.g))
        size = min(self.batch_size, len(pool))
        for start in range(0, plan.shape[1], size):
            p = plan[:, start : start + size]
            x = self._prepare(pool[p[0]], p)
            if kind == "ssl":
                yield Batch(x, None)
                continue
            if other is not None:
                assert s.ssl_x is not None  # `other` indexes the SSL pool
                o = other[:, start : start + size]
                x = mix_images(x, self._prepare(s.ssl_x[o[0]], o), lam)
            yield Batch(x, s.train_y[p[0]])


def mixed_batches(source: BatchSource, mixer: InputMixer, grid: tuple[int, int]) -> Iterator[Batch]:
    """The SL epoch as mixTrain items (trainers/accel.py), every item kept (no drop-last).

    The epoch's items, augmentation draws, shares and CutMix boxes reach the device in one copy
    each per epoch, none per step.
    """
    s, g, bs = source.splits, source.g, source.batch_size
    a, b, r = mixer.epoch_items(g)
    plan_a, plan_b = source.draws(a), source.draws(b)
    corner = None
    if mixer.mode == "cutmix":
        corner, size = cutmix_box(grid, mixer.share, len(a), g)
        corner = corner.to(source.device)
    r = r.to(source.device)
    for start in range(0, len(a), bs):
        pa, pb, ir = (
            plan_a[:, start : start + bs],
            plan_b[:, start : start + bs],
            r[start : start + bs],
        )
        ia, ib = pa[0], pb[0]
        xa, xb = source._prepare(s.train_x[ia], pa), source._prepare(s.train_x[ib], pb)
        cells = None
        if corner is not None:
            unmixed = (ia == ib)[:, None]  # an unmixed item is all of a
            cells = box_cells(corner[start : start + bs], size, grid) | unmixed
            pixels = cells_to_pixels(cells, grid, s.image_size)
            x = torch.where(pixels, xa, xb)
            ir = pixels.float().mean(dim=(1, 2, 3))  # a's exact pixel share
        else:
            x = ir[:, None, None, None] * xa + (1 - ir)[:, None, None, None] * xb
        yield Batch(x, s.train_y[ia], MixItems(ia, ib, ir, cells), s.train_y[ib], mixer.mode)


def _cpu_sdpa_flop(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _cpu_sdpa_backward_flop(
    grad_shape,
    q_shape,
    k_shape,
    v_shape,
    *args,
    out_shape=None,
    **kwargs,  # noqa: ANN001
) -> int:
    return sdpa_backward_flop_count(grad_shape, q_shape, k_shape, v_shape)


_aten = torch.ops.aten
# torch's counter knows the CUDA attention kernels but not the CPU fused one, which it counts
# as 0 FLOPs. Count it with the formulas torch uses for the CUDA flash/efficient kernels
# (backward includes the score recompute), so a step counts the same on every device.
ATTENTION_FLOPS = {
    _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}


def flop_counter() -> FlopCounterMode:
    """torch's FLOP counter with attention counted on the CPU too (see ATTENTION_FLOPS)."""
    return FlopCounterMode(display=False, custom_mapping=ATTENTION_FLOPS)


def count_step_gflops(
    model: MixModel, kind: str, batch: Batch, autocast: Callable[[], AbstractContextManager[Any]]
) -> float:
    """GFLOPs of one forward+backward step of `kind`, by torch's FLOP counter.

    Counted on a copy of the model with the RNG forked, so counting changes neither the
    weights, BatchNorm statistics nor the random stream of the run it measures.
    """
    shadow = copy.deepcopy(model)
    devices = [batch.x.device] if batch.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), flop_counter() as counter:
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
