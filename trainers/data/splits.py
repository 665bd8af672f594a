"""Train/val/test/SSL splits of one dataset, as uint8 tensors held in memory.

Index bookkeeping is numpy (seeded `default_rng`), pixels stay torch uint8 tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .images import CHUNK as _CHUNK
from .images import convert_images
from .loaders import BUILTIN_DATASETS, DataOptions, RawDataset, load_dataset
from .rows import Rows, select, stratified_take

SSL_SOURCES = ("same", "unlabeled", "all", *BUILTIN_DATASETS)


@dataclass(frozen=True)
class Splits:
    """All tensors a trial trains and evaluates on (see docs/internal-interfaces.md)."""

    # Image "tensors" are uint8 tensors, or `Rows` views of a large prepared dataset's memory
    # map (gathered per batch; trainers/data/rows.py).
    train_x: Tensor | Rows  # uint8 [N, C, H, W] labelled pool (labeled_fraction, label_noise)
    train_y: Tensor  # int64 [N]
    val_x: Tensor | Rows  # uint8 [Nv, C, H, W] held out of the training images (or val/)
    val_y: Tensor  # int64 [Nv], never noised
    test_x: Tensor | Rows  # uint8 [Nt, C, H, W] the dataset's own test split
    test_y: Tensor  # int64 [Nt], never noised
    ssl_x: Tensor | Rows | None  # uint8 [Ns, C, H, W]; None = SSL uses train_x ("same")
    num_classes: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]  # per channel, of train_x / 255
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()  # a folder's class names (index = label)
    note: str = ""  # what loading decided, for the run's output


def build_splits(
    dataset: str,
    data_dir: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    labeled_fraction: float = 1.0,
    ssl_source: str = "same",
    unlabeled_fraction: float = 1.0,
    label_noise: float = 0.0,
    seed: int = 0,
    options: DataOptions | None = None,
) -> Splits:
    """Split a dataset's training images into labelled pool, validation and SSL images.

    Validation takes a stratified seeded `val_fraction` of the training images; the labelled
    pool is a stratified seeded `labeled_fraction` of the rest (per class: the fraction of the
    class count rounded half up, at least 1). With `label_noise = p` each labelled image's label
    is, with probability p, replaced by a class drawn uniformly from the *other* classes (so the
    observed flip rate is p); validation and test labels are never noised.

    Args:
        dataset: one of `DATASETS`.
        data_dir: where the dataset's files are (see `load_dataset`); also used for an
            `ssl_source` naming another dataset.
        val_fraction: share of training images held out for validation, in (0, 1).
        labeled_fraction: share of the remaining training images that keep labels, in (0, 1].
        ssl_source: "same" (SSL on the labelled pool, `ssl_x` None), "unlabeled" (the training
            images outside the labelled pool and validation), "all" (the labelled pool and those
            unlabelled images together: every training image but validation's; `ssl_x` None
            when nothing is unlabelled, as then it is the labelled pool) or another dataset's
            name (its training images, converted to this dataset's channels and size).
        unlabeled_fraction: share of the unlabelled images ("unlabeled" and "all": the training
            images outside the labelled pool and validation, or a folder's unlabelled images)
            that SSL keeps, a seeded random subset, in (0, 1]; the labelled pool is always kept.
        label_noise: probability of replacing a labelled image's label, in [0, 1).
        seed: one seed for every random choice; the same seed gives identical splits.
        options: image size, a folder's unlabelled images, the prepared-data cache
            (`load_dataset`). A folder's own val/ is the validation split (val_fraction unused);
            its unlabelled images are what "unlabeled" means, and "all" adds them to every
            non-validation training image.

    Returns:
        The `Splits`, with per-channel mean/std of `train_x / 255`.

    Raises:
        ValueError: a setting out of range, an unknown dataset or ssl_source, no images left for
            `ssl_source="unlabeled"`, or the loader's missing/corrupt file errors.
    """
    _check_range("val_fraction", val_fraction, 0.0, 1.0, "(0, 1)", lo_ok=False, hi_ok=False)
    _check_range("labeled_fraction", labeled_fraction, 0.0, 1.0, "(0, 1]", lo_ok=False)
    _check_range("unlabeled_fraction", unlabeled_fraction, 0.0, 1.0, "(0, 1]", lo_ok=False)
    _check_range("label_noise", label_noise, 0.0, 1.0, "[0, 1)", hi_ok=False)
    if ssl_source not in SSL_SOURCES or ssl_source == dataset:
        raise ValueError(
            f"ssl_source {ssl_source!r} is not allowed for dataset {dataset!r}; allowed: 'same', "
            f"'unlabeled', 'all' or another dataset: "
            f"{', '.join(d for d in BUILTIN_DATASETS if d != dataset)}"
        )
    raw = load_dataset(dataset, data_dir, options or DataOptions())
    rng = np.random.default_rng(seed)
    labels = raw.train_y.numpy()
    everything = np.arange(len(labels))
    if raw.val_x is None:
        val_idx, rest = stratified_take(labels, everything, val_fraction, rng, keep=1)
    else:
        val_idx, rest = np.array([], dtype=np.int64), everything
    lab_idx, unlab = stratified_take(labels, rest, labeled_fraction, rng, keep=0)
    train_y = _noisy_labels(labels[lab_idx], label_noise, raw.num_classes, rng)
    train_x = select([(raw.train_x, lab_idx)], raw.mapped)
    if raw.val_x is None:
        val_x = select([(raw.train_x, val_idx)], raw.mapped)
        val_y = raw.train_y[torch.from_numpy(val_idx)]
    else:
        assert raw.val_y is not None
        val_x, val_y = raw_images(raw.val_x, raw.mapped), raw.val_y
    _, in_chans, image_size, _ = train_x.shape
    mean, std = _channel_stats(train_x)
    return Splits(
        train_x=train_x,
        train_y=torch.from_numpy(train_y),
        val_x=val_x,
        val_y=val_y,
        test_x=raw_images(raw.test_x, raw.mapped),
        test_y=raw.test_y,
        ssl_x=_ssl_images(
            ssl_source,
            raw,
            (lab_idx, unlab),
            # its own generator: the labelled pool and validation never depend on the fraction
            (unlabeled_fraction, np.random.default_rng([seed, 1])),
            (data_dir, in_chans, image_size),
        ),
        num_classes=raw.num_classes,
        in_chans=in_chans,
        image_size=image_size,
        mean=mean,
        std=std,
        classes=raw.classes,
        note=raw.note,
    )


def raw_images(x: Tensor, mapped: bool) -> Tensor | Rows:
    """A whole array as a split: a view when it is a large memory map, else itself."""
    return select([(x, np.arange(len(x)))], mapped) if mapped else x


def _check_range(
    name: str,
    value: float,
    lo: float,
    hi: float,
    shown: str,
    lo_ok: bool = True,
    hi_ok: bool = True,
) -> None:
    above = value >= lo if lo_ok else value > lo
    below = value <= hi if hi_ok else value < hi
    if not (above and below):  # also rejects NaN
        raise ValueError(f"{name} = {value!r} is out of range; allowed: {shown}")


def _noisy_labels(
    y: np.ndarray, p: float, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Replace each label with probability p by a uniformly drawn *different* class."""
    flip = rng.random(len(y)) < p
    # An offset in 1..K-1 modulo K is uniform over the other K-1 classes and never 0.
    offset = rng.integers(1, num_classes, size=len(y))
    return np.where(flip, (y + offset) % num_classes, y).astype(np.int64)


def _channel_stats(x: Tensor | Rows) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of x / 255, exact from a 256-bin histogram (no float copy)."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    hists = torch.zeros(x.shape[1], 256, dtype=torch.float64)
    for i in range(0, len(x), _CHUNK):
        chunk = x[i : i + _CHUNK]
        for c in range(x.shape[1]):
            hists[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256).double()
    for c in range(x.shape[1]):
        hist = hists[c]
        mean = float((hist * values).sum() / hist.sum())
        var = float((hist * (values - mean) ** 2).sum() / hist.sum())
        means.append(mean)
        stds.append(var**0.5 if var > 0 else 1.0)  # constant images: avoid dividing by zero
    return tuple(means), tuple(stds)


def _subset(idx: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded `fraction` of `idx` (at least one), sorted; all of it at 1."""
    if fraction >= 1.0 or len(idx) == 0:
        return idx
    return np.sort(rng.choice(idx, size=max(1, round(fraction * len(idx))), replace=False))


def _ssl_images(
    source: str,
    raw: RawDataset,
    pools: tuple[np.ndarray, np.ndarray],
    keep: tuple[float, np.random.Generator],
    shape: tuple[str | Path | None, int, int],
) -> Tensor | Rows | None:
    """pools: (the labelled pool's indices, the unlabelled ones); keep: the share of the
    unlabelled images SSL keeps and the generator that picks them; shape: (data_dir, channels,
    size) for another dataset's images."""
    lab_idx, unlab = pools
    fraction, rng = keep
    unlab = _subset(unlab, fraction, rng)
    extra = raw.unlabeled_x  # a folder's unlabeled_dir images
    if source == "same" or source == "all" and len(unlab) == 0 and extra is None:
        return None
    if source == "all":
        parts = [(raw.train_x, np.union1d(lab_idx, unlab))]
        if extra is not None:
            parts.append((extra, _subset(np.arange(len(extra)), fraction, rng)))
        return select(parts, raw.mapped)
    if source == "unlabeled":
        if extra is not None:
            if fraction >= 1.0:
                return raw_images(extra, raw.mapped)
            return select([(extra, _subset(np.arange(len(extra)), fraction, rng))], raw.mapped)
        if len(unlab) == 0:
            raise ValueError(
                "ssl_source='unlabeled' needs training images outside the labelled pool, but "
                "labeled_fraction leaves none; lower labeled_fraction (allowed: (0, 1)), "
                "give unlabeled_dir (dataset 'folder') or use ssl_source='same'"
            )
        return select([(raw.train_x, unlab)], raw.mapped)
    data_dir, chans, size = shape
    return convert_images(load_dataset(source, data_dir).train_x, chans, size)
