"""Batched augmentation and normalisation as tensor ops (no per-sample Python in the hot loop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def augment(x: Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> Tensor:
    """Random crop after zero padding, then random horizontal flip, per sample.

    Each sample gets its own crop offset (uniform in 0..2*pad on each axis) and, when `flip`,
    is mirrored left-right with probability 0.5. The random draws come from `generator` on its
    own device, so a CPU generator gives the same augmentation whatever device `x` is on.

    Args:
        x: uint8 [B, C, H, W] on any device.
        generator: source of randomness (seeded by the caller for reproducibility).
        pad: zero padding on every side before cropping back to H x W; 0 disables cropping.
        flip: whether to apply random horizontal flips.

    Returns:
        uint8 [B, C, H, W] on x's device.
    """
    if x.dim() != 4:
        raise ValueError(f"augment expects images [B, C, H, W], got shape {tuple(x.shape)}")
    offsets, mirrored = augment_params(len(x), generator, pad, flip)
    return apply_augment(x, offsets.to(x.device), mirrored.to(x.device), pad)


def augment_params(
    n: int, generator: torch.Generator, pad: int = 4, flip: bool = True
) -> tuple[Tensor, Tensor]:
    """The random draws of `augment` for n samples, on the generator's device.

    Drawn for a whole epoch at once, they move to the GPU in one copy instead of one per step.

    Returns:
        (offsets int64 [2, n]: crop row/column offsets in 0..2*pad, mirrored bool [n]).
    """
    if pad < 0:
        raise ValueError(f"pad = {pad} is out of range; allowed: pad >= 0")
    g_dev = generator.device
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=g_dev)
    mirrored = torch.rand(n, generator=generator, device=g_dev) < 0.5
    return offsets, mirrored & flip


def apply_augment(x: Tensor, offsets: Tensor, mirrored: Tensor, pad: int = 4) -> Tensor:
    """Crop and flip uint8 x [B, C, H, W] by `augment_params` already on x's device."""
    b, c, h, w = x.shape
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # [B, H] rows of padded image
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # [B, W]
    # A flip after the crop reads the crop's columns right to left.
    cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    # One gather: out[n, k, i, j] = padded[n, k, rows[n, i], cols[n, j]]
    n_idx = torch.arange(b, device=x.device)[:, None, None, None]
    k_idx = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[n_idx, k_idx, rows[:, None, :, None], cols[:, None, None, :]]


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """Scale uint8 images to float32 and standardise per channel.

    Args:
        x: uint8 [..., C, H, W].
        mean: C per-channel means of x / 255.
        std: C per-channel standard deviations of x / 255.

    Returns:
        float32 [..., C, H, W]: (x / 255 - mean) / std.

    Pass `channel_constants(...)` (tensors already on x's device) in a training loop: a Python
    sequence is copied to the device on every call.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    if mean_t.shape[0] != x.shape[-3] or std_t.shape[0] != x.shape[-3]:
        raise ValueError(
            f"normalize got {mean_t.shape[0]} means and {std_t.shape[0]} stds for "
            f"{x.shape[-3]} channels; need one of each per channel"
        )
    return (x.to(torch.float32) / 255 - mean_t) / std_t


def channel_constants(
    mean: Sequence[float], std: Sequence[float], device: torch.device
) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std as float32 [C] tensors on `device`, made once per run."""
    return (
        torch.tensor(mean, dtype=torch.float32, device=device),
        torch.tensor(std, dtype=torch.float32, device=device),
    )
