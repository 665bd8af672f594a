"""Selected rows of memory-mapped image arrays, gathered per batch (no private copy).

A split of a large prepared dataset is a list of row indices into arrays that every trial
process maps from the same files. `Rows` answers what the training loop asks of an image
tensor (`len`, `shape`, `rows[idx]`, `rows[a:b]`, `.to(device)`) by gathering only the rows
asked for, on the host, and moving that batch to its device. Small splits are copied into
ordinary tensors instead (`select`): the whole-split-on-device fast path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

# A split whose pixels exceed this stays a `Rows` view of the memory map; below it, a trial
# copies it (onto the GPU when there is one). docs/data.md explains the choice.
PRIVATE_COPY_MAX_BYTES = 64 * 2**20


class Rows:
    """Rows `index` of the concatenation of uint8 arrays [N_i, C, H, W]; batches on `device`."""

    def __init__(
        self,
        parts: Sequence[tuple[np.ndarray, np.ndarray]],
        device: torch.device | str = "cpu",
    ) -> None:
        self.parts = [(base, np.asarray(index, dtype=np.int64)) for base, index in parts]
        self.device = torch.device(device)
        self._ends = np.cumsum([len(index) for _, index in self.parts])
        first = self.parts[0][0]
        self.shape = torch.Size((int(self._ends[-1]), *first.shape[1:]))
        self.dtype = torch.uint8

    def __len__(self) -> int:
        return self.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Rows:
        return Rows(self.parts, device)

    def _gather(self, where: np.ndarray) -> np.ndarray:
        out = np.empty((len(where), *self.shape[1:]), dtype=np.uint8)
        starts = np.concatenate([[0], self._ends[:-1]])
        part_of = np.searchsorted(self._ends, where, side="right")
        for k, (base, index) in enumerate(self.parts):
            hit = np.nonzero(part_of == k)[0]
            if len(hit):
                rows = index[where[hit] - starts[k]]
                order = np.argsort(rows, kind="stable")  # ascending reads: kinder to the disk
                out[hit[order]] = base[rows[order]]
        return out

    def __getitem__(self, key: int | slice | Tensor | np.ndarray) -> Tensor:
        if isinstance(key, int):
            return self[np.array([key])][0]
        if isinstance(key, slice):
            where = np.arange(len(self))[key]
        else:
            where = torch.as_tensor(key).to("cpu").numpy().astype(np.int64, copy=False)
            where = np.where(where < 0, where + len(self), where)
        batch = torch.from_numpy(self._gather(where))
        return batch.to(self.device, non_blocking=self.device.type == "cuda")


def select(
    parts: Sequence[tuple[Tensor, np.ndarray]],
    mapped: bool,
    limit: int | None = None,
) -> Tensor | Rows:
    """Rows of `parts`: a `Rows` view when the bases are memory maps and the rows' pixels
    exceed `limit`, else an ordinary tensor (a private copy, as any fancy index makes)."""
    limit = PRIVATE_COPY_MAX_BYTES if limit is None else limit
    if not mapped or sum(len(i) for _, i in parts) * int(np.prod(parts[0][0].shape[1:])) <= limit:
        picked = [b[torch.from_numpy(np.asarray(i, dtype=np.int64))] for b, i in parts]
        return picked[0] if len(picked) == 1 else torch.cat(picked)
    return Rows([(b.numpy(), i) for b, i in parts])


def stratified_take(
    labels: np.ndarray, pool: np.ndarray, fraction: float, rng: np.random.Generator, keep: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split `pool` (indices into labels) into (taken, rest), per class a seeded random subset.

    Per class of size n: take round-half-up(fraction * n), at least 1 and at most n - keep, so
    every class is represented on both sides when keep=1. Both outputs are sorted.
    """
    shuffled = pool[rng.permutation(len(pool))]
    # Stable sort by label keeps the random order inside each class.
    by_class = shuffled[np.argsort(labels[shuffled], kind="stable")]
    y = labels[by_class]
    classes, starts, counts = np.unique(y, return_index=True, return_counts=True)
    take = np.floor(fraction * counts + 0.5).astype(np.int64)
    take = np.clip(take, 1, np.maximum(counts - keep, 1))
    rank = np.arange(len(y)) - np.repeat(starts, counts)  # position inside its class
    chosen = rank < np.repeat(take, counts)
    return np.sort(by_class[chosen]), np.sort(by_class[~chosen])
