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
from trainers.models.timm_models import PREFIX, DecoderSizes, create_timm_model, family
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
    # CPU default: 49 tokens at 28 px (its throughput: benchmarks/throughput.py)
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
    """Build a registered model, or a timm backbone named `timm/<name>`.

    Args:
        name: one of `MODELS`, or `timm/<timm model name>` (trainers/models/timm_models.py).
        num_classes: classifier outputs.
        image_size: square input side in pixels.
        in_chans: input channels.
        **overrides: preset fields to replace (e.g. `mask_ratio=0.5` for a ViT); for a timm
            model `patch_size` and `decoder` (a `DecoderSizes`).

    Raises:
        ValueError: unknown name, unsupported family or image size, bad sizes or unknown
            override.
    """
    if name.startswith(PREFIX):
        return create_timm_model(name, num_classes, image_size, in_chans, **overrides)
    if name not in PRESETS:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(MODELS)}, or timm/<name> (any "
            "timm ViT or CNN, from scratch)"
        )
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


def model_family(name: str) -> str:
    """ "vit" (MAE path) or "cnn" (autoencoder path); ValueError for an unknown or unsupported
    model (a timm name is checked on the meta device, no weights built)."""
    if name.startswith(PREFIX):
        return family(name)
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}, or timm/<name>")
    return "cnn" if isinstance(PRESETS[name], ResNetPreset) else "vit"


def model_options(config: Any) -> dict[str, Any]:
    """`create_model` keyword arguments from a TrialConfig's model settings (timm models)."""
    if not config.model.startswith(PREFIX):
        return {}
    sizes = DecoderSizes(config.decoder_width, config.decoder_depth, config.decoder_heads)
    options: dict[str, Any] = {"decoder": sizes}
    if config.patch_size is not None:
        options["patch_size"] = config.patch_size
    return options


def model_for(config: Any, num_classes: int, image_size: int, in_chans: int) -> MixModel:
    """The model a TrialConfig asks for, sized to the data."""
    return create_model(config.model, num_classes, image_size, in_chans, **model_options(config))


# Shapes of the built-in datasets (channels, side, classes): what a model is sized to when
# image_size is not set. A folder's come from its preparation.
NATIVE_SHAPES = {
    "fashion_mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "tinyimagenet": (3, 64, 200),
    "digits": (1, 8, 10),
}


def model_summary(model: MixModel, image_size: int) -> dict[str, Any]:
    """Which SSL path a built model takes, its grid or stride, and its sizes (parameters)."""
    total = sum(p.numel() for p in model.parameters())
    decoder = sum(p.numel() for p in model.decoder.parameters())
    grid = list(model.feature_grid)
    if isinstance(model, ViTMAE):
        shape = {"patch_size": model.patch_size, "patch_grid": grid}
        path = "MAE: masked SSL steps on a patch-token ViT (mix_pass full|masked, ssl_pass)"
    else:
        shape = {"feature_map": grid, "feature_stride": round(image_size / grid[0], 2)}
        path = "autoencoder: every pixel encoded, a transposed-conv decoder (no masking)"
    return {
        "path": path,
        "image_size": image_size,
        **shape,
        "parameters": total,
        "decoder_parameters": decoder,
        "encoder_and_head_parameters": total - decoder,
    }
