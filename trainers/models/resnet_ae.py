"""ResNet backbone (timm, CIFAR stem) + transposed-conv decoder: the paper's ResNet autoencoder.

The CIFAR stem (3x3 stride-1 conv, no max-pool) leaves an overall stride of 8, so a 32 px
image gives a 4x4 feature map; the decoder upsamples 8x back to pixels. There is no masking:
the SSL loss is plain MSE over all pixels.
"""

from __future__ import annotations

import timm
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, ResNet
from torch import Tensor, nn

from trainers.models.base import MixModel


def _cifar_stem(net: ResNet, in_chans: int, width: int) -> ResNet:
    # 7x7/2 conv + max-pool would shrink a 28-32 px image to 8 px before the first block
    net.conv1 = nn.Conv2d(in_chans, width, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    return net


def resnet18_backbone(in_chans: int) -> ResNet:
    """timm resnet18 without head or pooling, CIFAR stem. [N, C, H, W] -> [N, 512, H/8, W/8]."""
    # zero_init_last=False matches torchvision's default (zero_init_residual=False) and lets
    # every residual branch receive gradient from the first step
    net = timm.create_model(
        "resnet18",
        pretrained=False,
        num_classes=0,
        global_pool="",
        in_chans=in_chans,
        zero_init_last=False,
    )
    return _cifar_stem(net, in_chans, net.bn1.num_features)


def resnet_micro_backbone(in_chans: int, channels: tuple[int, ...] = (16, 32, 64, 128)) -> ResNet:
    """One BasicBlock per stage, narrow channels. [N, C, H, W] -> [N, channels[-1], H/8, W/8]."""
    # timm's plain stem is always 64 wide; a "deep" stem is 2 * stem_width wide, so asking for
    # one with stem_width = channels[0] // 2 sizes bn1 and layer1's input to channels[0]. Its
    # three convs are then swapped for the single CIFAR conv.
    net = ResNet(
        BasicBlock,
        layers=(1, 1, 1, 1),
        channels=channels,
        in_chans=in_chans,
        num_classes=0,
        global_pool="",
        stem_type="deep",
        stem_width=channels[0] // 2,
        zero_init_last=False,
    )
    return _cifar_stem(net, in_chans, channels[0])


class ConvDecoder(nn.Sequential):
    """Two transposed convs, 4x then 2x: [N, C', h, w] -> [N, in_chans, 8h, 8w]."""

    def __init__(self, in_features: int, width: int, in_chans: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_features, width, kernel_size=4, stride=4),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, in_chans, kernel_size=2, stride=2),
        )


class ResNetAE(MixModel):
    """ResNet backbone shared by a linear classifier and a transposed-conv decoder."""

    def __init__(
        self,
        backbone: ResNet,
        *,
        num_classes: int,
        image_size: int,
        in_chans: int,
        decoder_width: int,
    ) -> None:
        super().__init__()
        self.mask_ratio = 0.0  # a plain autoencoder: nothing is masked
        self.image_size = image_size
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, num_classes)
        self.decoder = ConvDecoder(backbone.num_features, decoder_width, in_chans)

    def encode(self, x: Tensor, mask_ratio: float = 0.0) -> tuple[Tensor, None, None]:
        """x: [N, C, H, W] -> (feats [N, C', h, w], None, None). mask_ratio must be 0."""
        if mask_ratio != 0:
            raise ValueError(
                f"ResNet autoencoder has no masking; mask_ratio must be 0, got {mask_ratio}"
            )
        return self.backbone.forward_features(x), None, None

    def mask_features(self, feats: Tensor, mask_ratio: float) -> tuple[Tensor, None, None]:
        """Identity: the AE reconstructs from all features."""
        return feats, None, None

    def classify(self, feats: Tensor) -> Tensor:
        """feats: [N, C', h, w] -> logits [N, num_classes] (global average pool + Linear)."""
        return self.head(feats.mean(dim=(2, 3)))

    @property
    def feature_grid(self) -> tuple[int, int]:
        # the CIFAR stem keeps the size; each of the three stride-2 stages halves it, rounding up
        g = self.image_size
        for _ in range(3):
            g = (g + 1) // 2
        return g, g

    def cell_features(self, feats: Tensor) -> Tensor:
        """feats: [N, C', h, w] -> [N, h*w, C'] (row-major cells)."""
        return feats.flatten(2).transpose(1, 2)

    def classify_pooled(self, pooled: Tensor) -> Tensor:
        return self.head(pooled)

    def reconstruct(self, feats: Tensor, ids_restore: Tensor | None = None) -> Tensor:
        """feats: [N, C', h, w] -> pred [N, C, H, W]."""
        pred = self.decoder(feats)
        if pred.shape[-1] != self.image_size or pred.shape[-2] != self.image_size:
            # sizes not divisible by 8 (28 px -> 4x4 -> 32 px) are resized back to the input
            size = (self.image_size, self.image_size)
            pred = F.interpolate(pred, size=size, mode="bilinear", align_corners=False)
        return pred

    def reconstruction_loss(self, x: Tensor, pred: Tensor, mask: Tensor | None) -> Tensor:
        """x, pred: [N, C, H, W] -> MSE over all pixels (mask is ignored, always None here)."""
        return F.mse_loss(pred, x)
