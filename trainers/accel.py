"""mixTrain input mixing for the SL phase (Krithivasan et al., "MixTrain: accelerating DNN
training via input mixing", Frontiers in AI 2024): fewer mini-batches per epoch by training on
composites of two inputs, applied selectively to the samples where it costs least.

An epoch is a list of *items* `(a, b, r)`: an unmixed sample is `(i, i, 1)`; a composite
carries sample `a` with share `r` and sample `b` with share `1 - r`. With a mixed set of size
m out of n samples an epoch has `n - floor(m / 2)` items, so `ceil((n - m/2) / batch)` batches.

Selective mixing (the paper's regions), decided after every epoch from per-sample losses
(measured for unmixed samples, estimated on the composite's output for mixed ones), with
thresholds `L_corr`, `L_incorr` and `L_mid = (L_corr + L_incorr) / 2`:
- region 1, loss < L_mid: mixed, and stays mixed while its loss stays below L_mid;
- region 2, L_mid <= loss <= L_incorr (or not rising): not mixed;
- region 3, loss > L_incorr and rising over the last epoch (k = 1): mixed for one epoch, then
  back to unmixed for at least one epoch.

The thresholds are running averages over all epochs so far, the rule of the paper's
selective-mixing section: each epoch contributes the mean loss of its correctly (`L_corr`) /
incorrectly (`L_incorr`) classified *unmixed* samples, and a threshold is the mean of those
epoch means, every epoch weighted equally (our reading of "running average"); an epoch with no
sample in a group adds nothing to that group. After epochs 1..t,
`L_corr = (1/t') sum_e mean(loss_e over e's unmixed correct samples)` over the t' epochs that
had such samples. An earlier version used the last epoch's means alone; that rule is not kept
as an option: it is not the paper's and no measurement favours it.
Until both thresholds exist (the first epoch, or while no epoch yet had a correct or an
incorrect unmixed sample) nothing is mixed.

Adaptive MixUp ratio (the paper's Eq. 4-5): a pair favours its harder input. Eq. 5 as printed
is the unnormalised ratio `L_a / L_b`; we use its normalised form `r_a = L_a / (L_a + L_b)`
(the same ordering, now a share in [0, 1]) and bound it to [R_MIN, 1 - R_MIN] so neither input
vanishes from the composite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trainers.config import SL_ACCELS
from trainers.runtime import host

R_MIN = 0.2
STATE_KEYS = ("loss", "prev", "correct", "mixed", "region3", "mean_sum", "mean_count")


def epoch_means(
    loss: Tensor, correct: Tensor, unmixed: Tensor
) -> tuple[float | None, float | None]:
    """One epoch's mean losses of its correct / incorrect unmixed samples (None: no such sample).

    Args:
        loss: [n] float per-sample losses of the epoch, NaN where unknown.
        correct: [n] bool, classified correctly.
        unmixed: [n] bool, trained unmixed in the epoch.
    """
    known = unmixed & ~torch.isnan(loss)
    good, bad = known & correct, known & ~correct
    return (
        float(loss[good].mean()) if good.any() else None,
        float(loss[bad].mean()) if bad.any() else None,
    )


def assign_regions(
    loss: Tensor, prev: Tensor, means: tuple[float, float] | None, region3_last: Tensor
) -> tuple[Tensor, Tensor]:
    """Next epoch's mixed set and its region-3 members, from the last two epochs' losses.

    loss, prev: [n] float (NaN = unknown); region3_last: [n] bool, mixed by region 3 last epoch.
    """
    n = len(loss)
    if means is None:
        return torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
    l_corr, l_incorr = means
    l_mid = (l_corr + l_incorr) / 2
    region1 = loss < l_mid
    rising = loss > prev  # False where either is NaN
    region3 = (loss > l_incorr) & rising & ~region3_last
    return region1 | region3, region3


def pair_items(mixed: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Items (a, b) of one epoch: unmixed samples alone (a = b), mixed ones in random pairs.

    An odd mixed set leaves its last member unmixed. Items come back shuffled.
    """
    idx = torch.arange(len(mixed))
    pool = idx[mixed][torch.randperm(int(mixed.sum()), generator=generator)]
    half = len(pool) // 2
    a = torch.cat([idx[~mixed], pool[:half], pool[2 * half :]])
    b = torch.cat([idx[~mixed], pool[half : 2 * half], pool[2 * half :]])
    order = torch.randperm(len(a), generator=generator)
    return a[order], b[order]


def adaptive_ratio(loss_a: Tensor, loss_b: Tensor, default: float) -> Tensor:
    """MixUp share of input a: `L_a / (L_a + L_b)` bounded to [R_MIN, 1 - R_MIN]."""
    total = loss_a + loss_b
    r = torch.where(
        torch.isfinite(total) & (total > 0), loss_a / total, torch.full_like(total, default)
    )
    return r.clamp(R_MIN, 1 - R_MIN)


def cutmix_box(
    grid: tuple[int, int], share: float, n: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Per item a box on the feature grid: rows [r0, r0 + h), cols [c0, c0 + w).

    The side is `round(sqrt(share) * grid)`, at least 1 and at most grid - 1 cells, so both
    constituents keep at least one cell. Returns (corner [n, 2], size [2]).
    """
    gh, gw = grid
    h = min(max(1, round(math.sqrt(share) * gh)), max(1, gh - 1))
    w = min(max(1, round(math.sqrt(share) * gw)), max(1, gw - 1))
    r0 = torch.randint(0, gh - h + 1, (n,), generator=generator)
    c0 = torch.randint(0, gw - w + 1, (n,), generator=generator)
    return torch.stack([r0, c0], dim=1), torch.tensor([h, w])


def box_cells(corner: Tensor, size: Tensor, grid: tuple[int, int]) -> Tensor:
    """[n, gh * gw] bool on corner's device: the cells inside each item's box (row-major)."""
    gh, gw = grid
    h, w = (int(v) for v in size)  # size lives on the CPU: no device read
    rows = torch.arange(gh, device=corner.device)[None, :, None]
    cols = torch.arange(gw, device=corner.device)[None, None, :]
    r0, c0 = corner[:, 0, None, None], corner[:, 1, None, None]
    inside = (rows >= r0) & (rows < r0 + h) & (cols >= c0) & (cols < c0 + w)
    return inside.reshape(len(corner), gh * gw)


def cells_to_pixels(cells: Tensor, grid: tuple[int, int], image: int) -> Tensor:
    """[n, gh*gw] bool cells -> [n, 1, image, image] bool pixels.

    The cells partition the image evenly (ceil(image / grid) pixels each, the last clipped):
    exactly a ViT's patches; for a ResNet close to where its stride-8 cells' receptive fields
    are centred (cell i near pixel 8i, e.g. the last of 4 cells over 28 px covers 21..27).
    """
    gh, gw = grid
    cell_h, cell_w = math.ceil(image / gh), math.ceil(image / gw)
    grid_mask = cells.reshape(-1, 1, gh, gw).float()
    pixels = torch.nn.functional.interpolate(grid_mask, scale_factor=(cell_h, cell_w))
    return pixels[..., :image, :image] > 0.5


@dataclass
class MixItems:
    """One batch of items: constituents, shares and (CutMix) the box cells of constituent a."""

    a: Tensor  # [B] sample indices
    b: Tensor  # [B]; a == b for an unmixed item
    r: Tensor  # [B] share of a (1 for unmixed)
    cells: Tensor | None = None  # [B, G] bool, CutMix only: a's cells


def skip_kept(n: int, skip_fraction: float) -> int:
    """How many of `n` samples one `skip` epoch trains on."""
    return round(n * (1 - skip_fraction))


def check_accel(mode: str, n: int, skip_fraction: float) -> None:
    """Reject settings that cannot train on a labelled pool of `n` samples (before any epoch).

    Raises:
        ValueError: an unknown mode, or `skip` settings that keep no sample of the pool.
    """
    if mode not in SL_ACCELS:
        raise ValueError(f"sl_accel must be one of {', '.join(SL_ACCELS)}, got {mode!r}")
    if mode == "skip" and skip_kept(n, skip_fraction) < 1:
        raise ValueError(
            f"sl_skip_fraction: {skip_fraction!r} with sl_accel: skip keeps no sample of the "
            f"{n} labelled images; lower sl_skip_fraction or raise labeled_fraction"
        )


class InputMixer:
    """Per-sample bookkeeping of selective mixing over one labelled pool of n samples.

    The decisions run on the CPU once per epoch; during the epoch `record` writes each step's
    per-item losses into copies on the training device (`device`), read back once by
    `end_epoch`, so a GPU step never waits on the host.

    The thresholds `L_corr` / `L_incorr` are running averages of the per-epoch means over all
    epochs so far (Krithivasan et al. 2024, selective mixing; see the module docstring), kept
    as a sum and a count per group so the state stays a few tensors (`state_dict`).
    """

    def __init__(
        self,
        mode: str,
        n: int,
        share: float,
        skip_fraction: float = 0.0,
        device: torch.device | None = None,
    ) -> None:
        check_accel(mode, n, skip_fraction)
        self.mode, self.n, self.share, self.skip_fraction = mode, n, share, skip_fraction
        self.device = device or torch.device("cpu")
        nan = torch.full((n,), float("nan"))
        self.loss, self.prev = nan.clone(), nan.clone()
        self.correct = torch.zeros(n, dtype=torch.bool)
        self.mixed = torch.zeros(n, dtype=torch.bool)  # this epoch's mixed set
        self.region3 = torch.zeros(n, dtype=torch.bool)
        # running thresholds: sums of the epoch means (L_corr, L_incorr), epochs counted
        self.mean_sum = torch.zeros(2, dtype=torch.float64)
        self.mean_count = torch.zeros(2, dtype=torch.int64)
        self._epoch: Tensor | None = None  # [2, n] float on device: loss, correct (0/1)

    @property
    def mixed_fraction(self) -> float:
        return float(self.mixed.float().mean()) if self.n else 0.0

    @property
    def thresholds(self) -> tuple[float, float] | None:
        """(L_corr, L_incorr), running averages over the epochs so far; None until both exist."""
        if not bool((self.mean_count > 0).all()):
            return None
        l_corr, l_incorr = (self.mean_sum / self.mean_count).tolist()
        return l_corr, l_incorr

    def _add_epoch_means(self) -> None:
        """Fold this epoch's means of the unmixed samples into the running thresholds."""
        for group, mean in enumerate(epoch_means(self.loss, self.correct, ~self.mixed)):
            if mean is not None:
                self.mean_sum[group] += mean
                self.mean_count[group] += 1

    def epoch_items(self, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """(a, b, r) for every item of the coming epoch (CPU); starts the epoch's recording."""
        self._epoch = torch.stack([self.loss, self.correct.float()]).to(self.device)
        if self.mode == "skip":  # the honest baseline: drop a random share of the samples
            keep = torch.randperm(self.n, generator=generator)[
                : skip_kept(self.n, self.skip_fraction)
            ]
            return keep, keep, torch.ones(len(keep))
        a, b = pair_items(self.mixed, generator)
        r = torch.ones(len(a))
        pair = a != b
        if self.mode == "mixup":
            r[pair] = adaptive_ratio(self.loss[a[pair]], self.loss[b[pair]], self.share)
        return a, b, r

    def record(
        self, a: Tensor, b: Tensor, loss_a: Tensor, loss_b: Tensor, correct_a: Tensor
    ) -> None:
        """Per-item losses of one step (estimated on the composite for mixed items)."""
        assert self._epoch is not None, "record() before epoch_items() started the epoch"
        loss, correct = self._epoch[0], self._epoch[1]
        pair = a != b
        loss_a, loss_b = loss_a.detach().float(), loss_b.detach().float()
        loss[a] = loss_a
        # b's estimate where paired, a's own loss again where not: no mask, so no device sync
        loss[torch.where(pair, b, a)] = torch.where(pair, loss_b, loss_a)
        correct[a] = torch.where(pair, correct[a], correct_a.float())

    def end_epoch(self) -> None:
        """Decide next epoch's mixed set from this epoch's losses (see the module docstring)."""
        if self._epoch is not None:  # the epoch's one read back from the device
            loss, correct = host(self._epoch)
            self.loss, self.correct, self._epoch = loss, correct.bool(), None
        if self.mode == "skip":  # the baseline mixes nothing; its mixed set stays empty
            return
        self._add_epoch_means()
        self.mixed, self.region3 = assign_regions(
            self.loss, self.prev, self.thresholds, self.region3
        )
        self.prev = self.loss.clone()

    def state_dict(self) -> dict[str, Tensor]:
        """The bookkeeping (CPU tensors only) that makes a resumed run decide exactly alike."""
        return {k: getattr(self, k).clone() for k in STATE_KEYS}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore `state_dict()`'s tensors.

        Raises:
            ValueError: the state lacks a key (e.g. written before the running thresholds).
        """
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(
                f"mixer state lacks {', '.join(missing)}: written by an older version; "
                "restart the run without its checkpoint"
            )
        for k in STATE_KEYS:
            setattr(self, k, state[k].clone())
