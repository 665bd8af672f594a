"""MixModel: one backbone, a reconstruction head and a classification head.

Subclasses implement the named stages (`encode`, `classify`, `reconstruct`,
`reconstruction_loss`, `mask_features`); the three step forwards the pipeline calls
(`ssl_loss`, `sl_logits`, `mix_forward`) are built here from those stages, so every
architecture gets the same phase semantics (ARCHITECTURE.md, "Compute reuse for MAE").
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

    def ssl_loss(self, x: Tensor) -> Tensor:
        """Vanilla MAE / AE step: the encoder sees only the visible patches.

        x: [N, C, H, W] (normalised pixels, also the target) -> scalar loss.
        """
        feats, mask, ids_restore = self.encode(x, self.mask_ratio)
        return self.reconstruction_loss(x, self.reconstruct(feats, ids_restore), mask)

    def sl_logits(self, x: Tensor) -> Tensor:
        """Supervised step: every token through the encoder. x: [N, C, H, W] -> [N, classes]."""
        feats, _, _ = self.encode(x, 0.0)
        return self.classify(feats)

    def mix_forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Merged MIX step: ONE encoder pass over all tokens feeds both heads.

        The classifier sees every token; the decoder sees the same features with a random
        `mask_ratio` of them swapped for its mask token and is scored on those only, so the
        encoder is not run a second time on a masked view (paper appendix A.2).

        x: [N, C, H, W] -> (loss_ssl scalar, logits [N, num_classes]).
        """
        feats, _, _ = self.encode(x, 0.0)
        logits = self.classify(feats)
        kept, mask, ids_restore = self.mask_features(feats, self.mask_ratio)
        loss_ssl = self.reconstruction_loss(x, self.reconstruct(kept, ids_restore), mask)
        return loss_ssl, logits

    def forward(self, x: Tensor) -> Tensor:
        """Evaluation forward (and what FLOP counters see by default): the SL logits."""
        return self.sl_logits(x)
