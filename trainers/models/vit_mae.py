"""ViT encoder + MAE decoder in the style of facebookresearch/mae `models_mae.py`.

Built from timm 1.x parts (`PatchEmbed`, `Block`: pre-norm, no `qk_scale`). Positional
embeddings are fixed 2D sin-cos (not learned), as in MAE. Shapes: N batch, L patches,
D widths, p patch size, C channels; `mask: [N, L], 1 = removed`.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import PatchEmbed, build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from trainers.models.base import MixModel

_LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def sincos_pos_embed(grid: int, dim: int) -> Tensor:
    """Fixed 2D sin-cos table with a zero row for the cls token -> [1, 1 + grid*grid, dim]."""
    table = build_sincos2d_pos_embed([grid, grid], dim=dim)
    return torch.cat([torch.zeros(1, dim), table], dim=0).unsqueeze(0)


def patchify(imgs: Tensor, p: int) -> Tensor:
    """imgs: [N, C, H, W] -> [N, L, p*p*C], patches row-major, pixels ordered (p, q, c)."""
    n, c, h, w = imgs.shape
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(x: Tensor, p: int, chans: int) -> Tensor:
    """x: [N, L, p*p*C] -> imgs: [N, C, H, W] (square grid); inverse of `patchify`."""
    n, length, _ = x.shape
    g = int(round(length**0.5))
    x = x.reshape(n, g, g, p, p, chans)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, chans, g * p, g * p)


def random_masking(x: Tensor, mask_ratio: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample random masking by argsort of uniform noise.

    x: [N, L, D] -> (x_kept [N, keep, D], mask [N, L] 1 = removed, ids_restore [N, L]),
    keep = max(1, int(L * (1 - mask_ratio))). `ids_restore` puts [kept, removed] tokens back
    in their original order. mask_ratio 0 keeps every token in its original order.
    """
    n, length, d = x.shape
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    if mask_ratio == 0.0:
        # no shuffle: the SL and MIX paths must see the patches exactly as embedded
        ids = torch.arange(length, device=x.device).expand(n, length)
        return x, torch.zeros(n, length, device=x.device), ids
    keep = max(1, int(length * (1 - mask_ratio)))
    noise = torch.rand(n, length, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
    # float32 even under bf16 autocast: bf16 cannot count past 256 removed patches exactly
    mask = torch.ones(n, length, device=x.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # back to the original patch order
    return x_kept, mask, ids_restore


def _init_weights(m: nn.Module) -> None:
    # MAE's init: xavier for every Linear (timm's default trunc-normal is for supervised ViTs)
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class MAEDecoder(nn.Module):
    """Lightweight MAE decoder: embed, fill removed slots with the mask token, unshuffle, blocks.

    Holds every reconstruction parameter (including `mask_token`) so `model.decoder` is the
    whole SSL head.
    """

    def __init__(
        self,
        grid: int,
        embed_dim: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        patch_dim: int,
    ) -> None:
        super().__init__()
        self.decoder_embed = nn.Linear(embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed(grid, width), persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio, qkv_bias=True, norm_layer=_LayerNorm)
            for _ in range(depth)
        )
        self.decoder_norm = _LayerNorm(width)
        self.decoder_pred = nn.Linear(width, patch_dim)
        self.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, feats: Tensor, ids_restore: Tensor) -> Tensor:
        """feats: [N, 1+keep, D] (cls first), ids_restore: [N, L] -> pred [N, L, p*p*C]."""
        x = self.decoder_embed(feats)
        n, length = ids_restore.shape
        mask_tokens = self.mask_token.expand(n, length + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)  # [kept, removed] in shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # drop cls


class ViTMAE(MixModel):
    """ViT encoder (cls token, fixed sin-cos positions, pre-norm blocks, final norm) + MAE."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        in_chans: int,
        num_classes: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        decoder_embed_dim: int,
        decoder_depth: int,
        decoder_num_heads: int,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__()
        self.patch_size, self.in_chans = patch_size, in_chans
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.patch_embed = PatchEmbed(image_size, patch_size, in_chans, embed_dim)
        grid = image_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(grid, embed_dim), persistent=False)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=_LayerNorm)
            for _ in range(depth)
        )
        self.norm = _LayerNorm(embed_dim)
        self.head = nn.Sequential()
        self.head.add_module("fc_norm", _LayerNorm(embed_dim))
        self.head.add_module("fc", nn.Linear(embed_dim, num_classes))
        self.apply(_init_weights)
        w = self.patch_embed.proj.weight  # like MAE: treat the patch conv as a Linear
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        patch_dim = patch_size * patch_size * in_chans
        self.decoder = MAEDecoder(
            grid=grid,
            embed_dim=embed_dim,
            width=decoder_embed_dim,
            depth=decoder_depth,
            heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            patch_dim=patch_dim,
        )

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def patchify(self, imgs: Tensor) -> Tensor:
        """imgs: [N, C, H, W] -> [N, L, p*p*C]."""
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: Tensor) -> Tensor:
        """x: [N, L, p*p*C] -> imgs: [N, C, H, W]."""
        return unpatchify(x, self.patch_size, self.in_chans)

    def encode(self, x: Tensor, mask_ratio: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """x: [N, C, H, W] -> (feats [N, 1+L_vis, D] cls first, mask [N, L], ids_restore [N, L])."""
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        x, mask, ids_restore = random_masking(x, mask_ratio)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def mask_features(self, feats: Tensor, mask_ratio: float) -> tuple[Tensor, Tensor, Tensor]:
        """feats: [N, 1+L, D] from `encode(x, 0)` -> (cls + kept [N, 1+keep, D], mask, ids)."""
        if feats.shape[1] != 1 + self.num_patches:
            raise ValueError(
                f"mask_features needs all {1 + self.num_patches} tokens, got {feats.shape[1]}"
            )
        kept, mask, ids_restore = random_masking(feats[:, 1:], mask_ratio)
        return torch.cat([feats[:, :1], kept], dim=1), mask, ids_restore

    def classify(self, feats: Tensor) -> Tensor:
        """feats: [N, 1+L', D] (any subset of patch tokens) -> logits; mean-pools patches only."""
        return self.head(feats[:, 1:].mean(dim=1))

    @property
    def feature_grid(self) -> tuple[int, int]:
        return tuple(self.patch_embed.grid_size)

    def cell_features(self, feats: Tensor) -> Tensor:
        """feats: [N, 1+L, D] (all tokens, in order) -> patch tokens [N, L, D]."""
        return feats[:, 1:]

    def classify_pooled(self, pooled: Tensor) -> Tensor:
        return self.head(pooled)

    def reconstruct(self, feats: Tensor, ids_restore: Tensor | None) -> Tensor:
        """feats: [N, 1+keep, D], ids_restore: [N, L] -> pred [N, L, p*p*C]."""
        if ids_restore is None:  # only a masked encode() gives the order to put tokens back in
            raise ValueError("ViTMAE.reconstruct needs ids_restore from a masked encode()")
        return self.decoder(feats, ids_restore)

    def reconstruction_loss(self, x: Tensor, pred: Tensor, mask: Tensor | None) -> Tensor:
        """x: [N, C, H, W], pred: [N, L, p*p*C], mask: [N, L] 1 = removed -> scalar.

        Per-patch MSE averaged over the removed patches. With no removed patch (mask None or
        all zeros) every patch is scored, i.e. a plain autoencoder, instead of dividing by 0.
        """
        target = self.patchify(x)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)  # [N, L]
        if mask is None:
            return loss.mean()
        removed = mask.sum()
        # torch.where rather than an `if` keeps the step free of a device sync
        return torch.where(removed > 0, (loss * mask).sum() / removed.clamp_min(1), loss.mean())
