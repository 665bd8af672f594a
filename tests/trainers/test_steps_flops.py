"""FLOP counts that include attention on every device, checked against a ViT counted by hand."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from trainers.models import create_model
from trainers.steps import Batch, count_step_gflops, flop_counter


def vit_matmul_flops(model, batch: int, train: bool) -> float:
    """Hand count of a ViT classification pass: every matmul, convolution and attention.

    Forward: patch conv 2*B*L*(C*p*p)*D; per block qkv + proj + MLP 2*B*N*D*D*(4 + 2*r) and
    attention 4*B*N*N*D (QK^T and AV over all heads); head 2*B*D*K. A training step adds the
    backward: twice the forward for every layer whose input needs a gradient (all but the patch
    conv, whose input is the image: weight gradient only), and 5 attention matmuls (with the
    score recompute of the flash/efficient kernels) where the forward has 2.
    """
    blocks = model.blocks
    d = model.cls_token.shape[-1]
    r = blocks[0].mlp.fc1.out_features / d
    n_patches = model.num_patches
    n = 1 + n_patches
    p = model.patch_size
    k = model.head.fc.out_features
    patch = 2 * batch * n_patches * (model.in_chans * p * p) * d
    linear = len(blocks) * 2 * batch * n * d * d * (4 + 2 * r)
    attention = len(blocks) * 4 * batch * n * n * d
    head = 2 * batch * d * k
    if not train:
        return patch + linear + attention + head
    return 2 * patch + 3 * (linear + head) + attention * (2 + 5) / 2


def test_sl_step_flops_match_the_hand_count_within_1_percent() -> None:
    torch.manual_seed(0)
    model = create_model("vit_micro", num_classes=10, image_size=28, in_chans=3).train()
    batch = Batch(torch.randn(2, 3, 28, 28), torch.randint(0, 10, (2,)))
    counted = count_step_gflops(model, "sl", batch, contextlib.nullcontext)
    expected = vit_matmul_flops(model, 2, train=True) / 1e9
    assert counted == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize(("name", "size"), [("vit_micro", 28), ("vit_tiny", 8)])
def test_forward_flops_match_the_hand_count(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, image_size=size, in_chans=1).eval()
    x = torch.randn(2, 1, size, size)
    with torch.inference_mode(), flop_counter() as counter:
        model.sl_logits(x)
    assert counter.get_total_flops() == pytest.approx(vit_matmul_flops(model, 2, False), rel=0.01)


def test_cpu_fused_attention_counts_what_the_math_kernel_counts() -> None:
    q, k, v = (torch.randn(2, 3, 50, 16) for _ in range(3))
    with flop_counter() as fused:
        F.scaled_dot_product_attention(q, k, v)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as math:
        F.scaled_dot_product_attention(q, k, v)
    assert fused.get_total_flops() == math.get_total_flops() == 4 * 2 * 3 * 50 * 50 * 16
