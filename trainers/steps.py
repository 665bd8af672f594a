"""One loss function for every step kind, the batch sources, and FLOP counting per step kind."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from trainers.data import Splits, augment, normalize
from trainers.models import MixModel
from trainers.plan import mix_images


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the run stops so the trial is marked errored."""


@dataclass
class Batch:
    x: Tensor  # float [B, C, H, W], augmented and normalised (mixed with SSL images in MIX)
    y: Tensor | None  # int64 [B]; None for SSL-only batches


def step_loss(model: MixModel, kind: str, batch: Batch, alpha: float) -> dict[str, Tensor]:
    """The loss of one step of `kind` (ssl | sl | mix). Always returns `"loss"`.

    MIX runs the backbone ONCE (`mix_forward`): its features feed both the decoder and the
    classifier, and the loss is `alpha * l_ssl + (1 - alpha) * l_sl`.
    """
    if kind == "ssl":
        loss_ssl = model.ssl_loss(batch.x)
        return {"loss": loss_ssl, "loss_ssl": loss_ssl}
    if kind == "sl":
        loss_sl = F.cross_entropy(model.sl_logits(batch.x), batch.y)
        return {"loss": loss_sl, "loss_sl": loss_sl}
    if kind == "mix":
        loss_ssl, logits = model.mix_forward(batch.x)
        loss_sl = F.cross_entropy(logits, batch.y)
        loss = alpha * loss_ssl + (1.0 - alpha) * loss_sl
        return {"loss": loss, "loss_ssl": loss_ssl, "loss_sl": loss_sl}
    raise ValueError(f"unknown step kind {kind!r}")


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


def count_step_gflops(
    model: MixModel, kind: str, batch: Batch, autocast: Callable[[], object]
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
