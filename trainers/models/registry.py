"""`create_model(name, ...)` over a registry of presets, timm-style.

ViT presets fix a *target* patch grid rather than a patch size, so one preset serves 28, 32
and 64 px datasets: the patch size is the divisor of the image size whose grid is closest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from timm.models.resnet import ResNet

from trainers.models.base import MixModel
from trainers.models.resnet_ae import ResNetAE, resnet18_backbone, resnet_micro_backbone
from trainers.models.vit_mae import ViTMAE


@dataclass(frozen=True)
class ViTPreset:
    """Encoder/decoder sizes; `target_grid` is the patches per side aimed for."""

    embed_dim: int
    depth: int
    num_heads: int
    decoder_embed_dim: int
    decoder_depth: int
    decoder_num_heads: int
    target_grid: int
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False  # raw pixels: better on small, mostly black images


@dataclass(frozen=True)
class ResNetPreset:
    backbone: Callable[[int], ResNet]  # in_chans -> backbone with a CIFAR stem
    decoder_width: int
    min_image_size: int = 8  # overall stride 8


PRESETS: dict[str, ViTPreset | ResNetPreset] = {
    # CPU default: 49 tokens at 28 px; ~1500 img/s fp32 SL training step, batch 256, 2 threads
    "vit_micro": ViTPreset(
        embed_dim=64,
        depth=4,
        num_heads=2,
        decoder_embed_dim=64,
        decoder_depth=1,
        decoder_num_heads=2,
        target_grid=7,
    ),
    # the paper's ViT-T (Tables 12-13): patch 2 at 32 px, patch 4 at 64 px; its MAE decoder as
    # the paper's appendix gives it: 2 blocks at the encoder's width (192), 3 heads
    "vit_tiny": ViTPreset(
        embed_dim=192,
        depth=12,
        num_heads=3,
        decoder_embed_dim=192,
        decoder_depth=2,
        decoder_num_heads=3,
        target_grid=16,
    ),
    "resnet_micro": ResNetPreset(backbone=resnet_micro_backbone, decoder_width=32),
    "resnet18": ResNetPreset(backbone=resnet18_backbone, decoder_width=128),
}
MODELS: tuple[str, ...] = tuple(PRESETS)


def choose_patch_size(image_size: int, target_grid: int) -> int:
    """Divisor p of `image_size` whose grid image_size / p is closest to `target_grid`.

    Ties go to the finer grid. Raises ValueError when no grid lies within a factor 2 of the
    target (e.g. 29 px, whose only grids are 29 and 1, for a target of 7).
    """
    grids = [image_size // p for p in range(1, image_size + 1) if image_size % p == 0]
    ok = [g for g in grids if target_grid / 2 <= g <= target_grid * 2]
    if not ok:
        raise ValueError(
            f"image_size {image_size} has no patch size giving a grid near {target_grid} "
            f"(possible grids: {sorted(grids)}); resize the images"
        )
    grid = min(ok, key=lambda g: (abs(g - target_grid), -g))
    return image_size // grid


def create_model(
    name: str, num_classes: int, image_size: int, in_chans: int, **overrides: Any
) -> MixModel:
    """Build a registered model.

    Args:
        name: one of `MODELS`.
        num_classes: classifier outputs.
        image_size: square input side in pixels.
        in_chans: input channels.
        **overrides: preset fields to replace (e.g. `mask_ratio=0.5` for a ViT).

    Raises:
        ValueError: unknown name, unsupported image size, bad sizes or unknown override.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    for field, value in (
        ("num_classes", num_classes),
        ("image_size", image_size),
        ("in_chans", in_chans),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be a positive integer, got {value!r}")
    try:
        preset = dataclasses.replace(PRESETS[name], **overrides)
    except TypeError as err:
        raise ValueError(f"bad override for model {name!r}: {err}") from None
    if isinstance(preset, ResNetPreset):
        if image_size < preset.min_image_size:
            raise ValueError(
                f"{name} needs image_size >= {preset.min_image_size}, got {image_size}"
            )
        return ResNetAE(
            preset.backbone(in_chans),
            num_classes=num_classes,
            image_size=image_size,
            in_chans=in_chans,
            decoder_width=preset.decoder_width,
        )
    if not 0.0 <= preset.mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {preset.mask_ratio}")
    kwargs = {f.name: getattr(preset, f.name) for f in dataclasses.fields(preset)}
    patch_size = choose_patch_size(image_size, kwargs.pop("target_grid"))
    return ViTMAE(
        image_size=image_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        **kwargs,
    )
