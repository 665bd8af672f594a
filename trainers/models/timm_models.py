"""Any timm backbone by name (`model: timm/<name>`), from scratch, on one of the two SSL paths.

- timm's `VisionTransformer` family (ViT, DeiT, ... with one class token) takes the MAE path:
  `TimmViTMAE` reuses the model's patch embedding, learned positions, blocks and final norm,
  and adds an MAE decoder and a mean-pooled linear head, so masked SSL steps, the merged MIX
  pass, `mix_pass: masked` and `ssl_pass: full` all work as on the `vit_*` presets.
- A backbone whose `forward_features` gives a spatial map [N, C, h, w] (ResNets, ConvNeXts,
  EfficientNets, ...) takes the autoencoder path: `TimmConvAE`, a transposed-conv decoder
  matched to the map's stride.
- Anything else is refused, naming the model and these two families.

Weights are never downloaded: every model is built with `pretrained=False`.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from trainers.models.resnet_ae import ResNetAE
from trainers.models.vit_mae import MAEDecoder, ViTMAE, _init_weights, random_masking

PREFIX = "timm/"
FAMILIES = (
    "timm's VisionTransformer family with one class token (vit_*, deit_* without distillation: "
    "the MAE path), or a backbone whose forward_features gives an [N, C, h, w] map (resnet*, "
    "convnext*, efficientnet*, ...: the autoencoder path)"
)


@dataclass(frozen=True)
class DecoderSizes:
    """The SSL decoder of a timm model; None fields take the defaults below."""

    width: int | None = None  # MAE: min(encoder width, 256); AE: 64
    depth: int | None = None  # MAE blocks: 2
    heads: int | None = None  # MAE: width // 32, at least 1


def timm_name(model: str) -> str:
    return model.removeprefix(PREFIX)


def _unknown(name: str) -> ValueError:
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""
    return ValueError(f"model {PREFIX}{name}: timm has no model of that name{hint}")


def _build(name: str, in_chans: int, **kwargs: object) -> nn.Module:
    if not timm.is_model(name):
        raise _unknown(name)
    try:
        return timm.create_model(
            name, pretrained=False, num_classes=0, global_pool="", in_chans=in_chans, **kwargs
        )
    except (TypeError, ValueError, AssertionError, RuntimeError) as e:
        raise ValueError(f"model {PREFIX}{name}: timm cannot build it here: {e}") from e


@functools.lru_cache(maxsize=64)
def family(model: str) -> str:
    """ "vit" (MAE path) or "cnn" (autoencoder path) of `timm/<name>`, or ValueError.

    Decided on the meta device (no memory, no weights): a `VisionTransformer` with one prefix
    token is a ViT; otherwise `forward_features` at the model's own input size must give a
    4-D map.
    """
    name = timm_name(model)
    with torch.device("meta"):
        net = _build(name, 3)
        if isinstance(net, VisionTransformer):
            if net.num_prefix_tokens != 1 or net.cls_token is None or net.no_embed_class:
                raise ValueError(
                    f"model {model}: a VisionTransformer with {net.num_prefix_tokens} prefix "
                    f"token(s) (class, register or distillation tokens); the MAE path takes "
                    f"exactly one class token. Supported: {FAMILIES}"
                )
            return "vit"
        size = net.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
        try:
            out = net.forward_features(torch.empty(1, 3, size, size))
        except (RuntimeError, AssertionError, ValueError, TypeError) as e:
            raise ValueError(f"model {model}: its forward_features failed ({e}); {FAMILIES}") from e
    if not isinstance(out, Tensor) or out.dim() != 4:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"model {model}: forward_features gives {shape}, neither a ViT token grid the MAE "
            f"path can mask nor a spatial map [N, C, h, w]. Supported: {FAMILIES}"
        )
    if out.shape[1] != getattr(net, "num_features", out.shape[1]):  # Swin: [N, h, w, C]
        raise ValueError(
            f"model {model}: forward_features gives {list(out.shape)}, channels last "
            f"(num_features {net.num_features}), not a map [N, C, h, w]. Supported: {FAMILIES}"
        )
    return "cnn"


class TimmViTMAE(ViTMAE):
    """A timm VisionTransformer as the encoder of the MAE path (see the module docstring)."""

    def __init__(
        self,
        net: VisionTransformer,
        *,
        num_classes: int,
        in_chans: int,
        decoder: DecoderSizes,
        mask_ratio: float = 0.75,
    ) -> None:
        nn.Module.__init__(self)
        self.patch_size = net.patch_embed.patch_size[0]
        self.in_chans, self.mask_ratio, self.norm_pix_loss = in_chans, mask_ratio, False
        self.patch_embed, self.cls_token, self.blocks = net.patch_embed, net.cls_token, net.blocks
        self.pos_embed = net.pos_embed  # learned, class position first (checked by `family`)
        self.norm_pre, self.norm = net.norm_pre, net.norm
        dim = net.embed_dim
        self.head = nn.Sequential()
        self.head.add_module("fc_norm", nn.LayerNorm(dim, eps=1e-6))
        self.head.add_module("fc", nn.Linear(dim, num_classes))
        self.head.apply(_init_weights)
        width = decoder.width or min(dim, 256)
        grid_h, grid_w = net.patch_embed.grid_size
        self.decoder = MAEDecoder(
            grid=grid_h,
            embed_dim=dim,
            width=width,
            depth=decoder.depth or 2,
            heads=decoder.heads or max(1, width // 32),
            mlp_ratio=4.0,
            patch_dim=self.patch_size * self.patch_size * in_chans,
        )

    def encode(self, x: Tensor, mask_ratio: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """ViTMAE's encode plus timm's `norm_pre` (Identity in most ViTs) before the blocks."""
        x = self.patch_embed(x)
        if x.dim() == 4:  # models built with dynamic_img_size embed to [N, h, w, D]
            x = x.flatten(1, 2)
        x = x + self.pos_embed[:, 1:]
        x, mask, ids_restore = random_masking(x, mask_ratio)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = self.norm_pre(torch.cat([cls, x], dim=1))
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore


class TimmConvAE(ResNetAE):
    """A timm backbone with a spatial feature map, shared by a linear head and a decoder."""

    def __init__(
        self,
        net: nn.Module,
        *,
        num_classes: int,
        image_size: int,
        in_chans: int,
        decoder: DecoderSizes,
        grid: tuple[int, int],
    ) -> None:
        width = decoder.width or 64
        nn.Module.__init__(self)
        self.mask_ratio, self.image_size, self.backbone = 0.0, image_size, net
        self._grid = grid
        features = int(net.num_features)
        self.head = nn.Linear(features, num_classes)
        self.decoder = conv_decoder(features, width, in_chans, image_size / grid[0])

    @property
    def feature_grid(self) -> tuple[int, int]:
        return self._grid


def conv_decoder(features: int, width: int, in_chans: int, stride: float) -> nn.Sequential:
    """log2(stride) transposed convs, each 2x up (BatchNorm + ReLU between): [N, C', h, w] ->
    [N, in_chans, h * 2^k, w * 2^k]. A size that is not a multiple of the stride is resized to
    the input by `reconstruct`, as on the presets."""
    ups = max(1, round(math.log2(max(stride, 2))))
    layers: list[nn.Module] = []
    chans = features
    for i in range(ups):
        last = i == ups - 1
        layers.append(nn.ConvTranspose2d(chans, in_chans if last else width, 2, stride=2))
        if not last:
            layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        chans = width
    return nn.Sequential(*layers)


def create_timm_model(
    model: str,
    num_classes: int,
    image_size: int,
    in_chans: int,
    *,
    patch_size: int | None = None,
    decoder: DecoderSizes = DecoderSizes(),
) -> ViTMAE | ResNetAE:
    """`timm/<name>` sized to the data, from scratch, wrapped for its SSL path.

    Raises:
        ValueError: unknown name, unsupported family, an image size the model cannot take
            (a ViT's patches must tile it; a CNN must leave at least a 1x1 map).
    """
    name = timm_name(model)
    kind = family(model)
    if kind == "vit":
        with torch.device("meta"):
            p = patch_size or _build(name, in_chans).patch_embed.patch_size[0]
        if image_size % p or image_size // p < 2:
            raise ValueError(
                f"model {model}: image_size {image_size} is not tiled by its {p}-px patches "
                f"(needs a multiple of {p}, at least {2 * p}); set image_size or patch_size"
            )
        net = _build(name, in_chans, img_size=image_size, patch_size=p)
        assert isinstance(net, VisionTransformer)
        return TimmViTMAE(net, num_classes=num_classes, in_chans=in_chans, decoder=decoder)
    if patch_size is not None:
        raise ValueError(f"model {model}: patch_size is for ViT models; this one is a CNN")
    net = _build(name, in_chans)
    try:
        with torch.no_grad():
            out = net.eval().forward_features(torch.zeros(1, in_chans, image_size, image_size))
        net.train()
    except (RuntimeError, ValueError) as e:  # a kernel larger than what is left of the image
        raise ValueError(f"model {model}: image_size {image_size} is too small for it: {e}") from e
    return TimmConvAE(
        net,
        num_classes=num_classes,
        image_size=image_size,
        in_chans=in_chans,
        decoder=decoder,
        grid=(int(out.shape[-2]), int(out.shape[-1])),
    )
