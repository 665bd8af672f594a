"""MixModel: one backbone, a reconstruction head and a classification head.

Subclasses implement the named stages (`encode`, `classify`, `reconstruct`,
`reconstruction_loss`, `mask_features`); the three step forwards the pipeline calls
(`ssl_loss`, `sl_logits`, `mix_forward`) are built here from those stages, so every
architecture gets the same phase semantics (the paper's compute reuse: `mix_forward_full`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class MixModel(nn.Module, ABC):
    """Backbone shared by an SSL decoder (`decoder`) and a classifier (`head`).

    Attributes:
        mask_ratio: MAE masking ratio used by `ssl_loss` and `mix_forward` (0 for a plain AE).
        decoder: the reconstruction head, and only it (the pipeline may group its parameters).
        head: the classification head, and only it.
    """

    mask_ratio: float
    decoder: nn.Module
    head: nn.Module
    # How the merged MIX step runs (set from TrialConfig.mix_pass / mix_mask_ratio):
    # "full" = the paper's compute reuse, "masked" = encoder on the visible tokens only.
    mix_pass: str = "full"
    mix_mask_ratio: float | None = None
    # How an SSL-phase step runs (TrialConfig.ssl_pass): "masked" = standard MAE, the encoder
    # sees the visible tokens only; "full" = every token encoded, the mask applied to features.
    ssl_pass: str = "masked"

    @abstractmethod
    def encode(
        self, x: Tensor, mask_ratio: float = 0.0
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """x: [N, C, H, W] -> (feats, mask [N, L] 1 = removed | None, ids_restore [N, L] | None)."""

    @abstractmethod
    def classify(self, feats: Tensor) -> Tensor:
        """feats from `encode` (any token subset for a ViT) -> logits [N, num_classes]."""

    @abstractmethod
    def reconstruct(self, feats: Tensor, ids_restore: Tensor | None) -> Tensor:
        """feats (visible tokens) -> prediction (ViT: [N, L, p*p*C]; ResNet: [N, C, H, W])."""

    @abstractmethod
    def reconstruction_loss(self, x: Tensor, pred: Tensor, mask: Tensor | None) -> Tensor:
        """x: [N, C, H, W] target pixels, pred from `reconstruct` -> scalar loss."""

    @abstractmethod
    def mask_features(
        self, feats: Tensor, mask_ratio: float
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Full-token feats -> (kept feats, mask, ids_restore) for the merged MIX step."""

    # Regions of the final features, for CutMix's split propagation (trainers/accel.py): the
    # features of each constituent's cells are pooled and classified separately.
    @property
    @abstractmethod
    def feature_grid(self) -> tuple[int, int]:
        """(rows, cols) of the cells `cell_features` returns."""

    @abstractmethod
    def cell_features(self, feats: Tensor) -> Tensor:
        """feats from `encode(x, 0)` -> [N, G, D], one row per grid cell, row-major."""

    @abstractmethod
    def classify_pooled(self, pooled: Tensor) -> Tensor:
        """pooled: [N, D] mean of some cells' features -> logits [N, num_classes]."""

    def ssl_loss(self, x: Tensor) -> Tensor:
        """SSL step: vanilla MAE / AE (`ssl_pass` masked) or the all-token pass (`full`).

        x: [N, C, H, W] (normalised pixels, also the target) -> scalar loss.
        """
        if self.ssl_pass == "full":
            return self.ssl_loss_full(x)
        feats, mask, ids_restore = self.encode(x, self.mask_ratio)
        return self.reconstruction_loss(x, self.reconstruct(feats, ids_restore), mask)

    def ssl_loss_full(self, x: Tensor) -> Tensor:
        """The SSL half of `mix_forward_full`: every token through the encoder, then a random
        `mask_ratio` of the features swapped for the decoder's mask token, scored on those only.

        Costs an encoder pass over all tokens (more than standard MAE's visible quarter): the
        SSL step the paper's appendix A.2 merges into its MIX step.
        """
        feats, _, _ = self.encode(x, 0.0)
        kept, mask, ids_restore = self.mask_features(feats, self.mask_ratio)
        return self.reconstruction_loss(x, self.reconstruct(kept, ids_restore), mask)

    def sl_logits(self, x: Tensor) -> Tensor:
        """Supervised step: every token through the encoder. x: [N, C, H, W] -> [N, classes]."""
        feats, _, _ = self.encode(x, 0.0)
        return self.classify(feats)

    def mix_forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Merged MIX step: ONE encoder pass feeds both heads (`mix_pass` says which).

        x: [N, C, H, W] -> (loss_ssl scalar, logits [N, num_classes]).
        """
        if self.mix_pass == "masked":
            return self.mix_forward_masked(x)
        return self.mix_forward_full(x)

    def mix_forward_full(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The paper's compute reuse (appendix A.2): every token goes through the encoder.

        The classifier sees every token; the decoder sees the same features with a random
        `mask_ratio` of them swapped for its mask token and is scored on those only, so the
        encoder is not run a second time on a masked view.
        """
        feats, _, _ = self.encode(x, 0.0)
        logits = self.classify(feats)
        kept, mask, ids_restore = self.mask_features(feats, self.mask_ratio)
        loss_ssl = self.reconstruction_loss(x, self.reconstruct(kept, ids_restore), mask)
        return loss_ssl, logits

    def mix_forward_masked(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Masked merged pass: draw the MAE mask first, encode the visible tokens only.

        The one set of visible-token features feeds the decoder (mask tokens + unshuffle, as in
        the SSL phase) and the classifier (pooled over the visible tokens), so a MIX step costs
        about a vanilla MAE step: roughly (1 - mix_mask_ratio) of the encoder's tokens.
        """
        ratio = self.mask_ratio if self.mix_mask_ratio is None else self.mix_mask_ratio
        feats, mask, ids_restore = self.encode(x, ratio)
        logits = self.classify(feats)
        loss_ssl = self.reconstruction_loss(x, self.reconstruct(feats, ids_restore), mask)
        return loss_ssl, logits

    def forward(self, x: Tensor) -> Tensor:
        """Evaluation forward (and what FLOP counters see by default): the SL logits."""
        return self.sl_logits(x)
