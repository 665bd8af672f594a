"""Image tensors converted between channel counts and sizes (uint8 in, uint8 out)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights: RGB -> gray as luminance
CHUNK = 4096  # images per resize step: bounds the float copy (tinyimagenet is 100k images)


def convert_images(x: Tensor, in_chans: int, image_size: int) -> Tensor:
    """Convert uint8 images [N, C, H, W] to [N, in_chans, image_size, image_size] uint8.

    RGB -> gray uses BT.601 luminance, gray -> RGB repeats the channel; resizing is bilinear
    with antialiasing (so downscaling averages instead of aliasing).
    """
    if x.shape[1] not in (1, 3) or in_chans not in (1, 3):
        raise ValueError(f"can only convert between 1 and 3 channels, got {x.shape[1]}->{in_chans}")
    out = torch.empty((len(x), in_chans, image_size, image_size), dtype=torch.uint8)
    luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
    for i in range(0, len(x), CHUNK):
        chunk = x[i : i + CHUNK].float()
        if chunk.shape[1] == 3 and in_chans == 1:
            chunk = (chunk * luma).sum(1, keepdim=True)
        elif chunk.shape[1] == 1 and in_chans == 3:
            chunk = chunk.expand(-1, 3, -1, -1)
        if chunk.shape[-2:] != (image_size, image_size):
            chunk = F.interpolate(
                chunk, size=(image_size, image_size), mode="bilinear", antialias=True
            )
        out[i : i + CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out
