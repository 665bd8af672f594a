"""`mix_pass: masked`: one encoder pass over the visible tokens feeds both heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainers import ConfigError, TrialConfig
from trainers.models import create_model
from trainers.steps import Batch, count_step_gflops, step_loss

SIZE = 16
PATCH = create_model("vit_micro", num_classes=10, image_size=SIZE, in_chans=1).patch_size
PATCH_GRID = SIZE // PATCH  # vit_micro picks the patch; the tests follow its grid


def masked_model(ratio: float = 0.75):
    torch.manual_seed(0)
    model = create_model("vit_micro", num_classes=10, image_size=SIZE, in_chans=1)
    model.mix_pass, model.mix_mask_ratio = "masked", ratio
    return model


def batch(n: int = 4) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(
        torch.randn(n, 1, SIZE, SIZE, generator=g), torch.randint(0, 10, (n,), generator=g)
    )


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75, 0.9])
def test_encoder_sees_exactly_the_visible_tokens(ratio: float) -> None:
    model = masked_model(ratio)
    seen: list[int] = []
    model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    model.mix_forward(batch().x)
    length = PATCH_GRID * PATCH_GRID
    assert seen == [1 + max(1, int(length * (1 - ratio)))]  # one encoder pass: cls + visible


def test_both_heads_send_gradient_into_the_backbone() -> None:
    model = masked_model()
    b = batch()
    backbone = [n for n, _ in model.named_parameters() if not n.startswith(("head", "decoder"))]
    for part in ("loss_ssl", "loss_sl"):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        step_loss(model, "mix", b, alpha=0.5)[part].backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        reached = [n for n in backbone if grads[n] is not None and grads[n].abs().sum() > 0]
        assert len(reached) > 0.9 * len(backbone), part
        head = "decoder" if part == "loss_ssl" else "head"
        assert any(g is not None for n, g in grads.items() if n.startswith(head))


def test_reconstruction_loss_covers_only_masked_patches() -> None:
    model = masked_model(0.75)
    captured = {}
    original = model.reconstruction_loss

    def spy(x, pred, mask):
        captured.update(pred=pred, mask=mask)
        return original(x, pred, mask)

    model.reconstruction_loss = spy
    x = batch().x
    loss_ssl, _ = model.mix_forward(x)
    mask, pred = captured["mask"], captured["pred"]
    length = PATCH_GRID * PATCH_GRID
    assert (mask.sum(1) == length - int(length * 0.25)).all()  # 75% of the patches removed
    per_patch = ((pred - model.patchify(x)) ** 2).mean(-1)
    torch.testing.assert_close(loss_ssl, (per_patch * mask).sum() / mask.sum())


def _patch_pixels(mask_row: torch.Tensor, which: int) -> tuple[slice, slice]:
    idx = int(torch.nonzero(mask_row == which)[0])
    r, c = divmod(idx, PATCH_GRID)
    return slice(r * PATCH, (r + 1) * PATCH), slice(c * PATCH, (c + 1) * PATCH)


def test_classifier_never_sees_a_masked_patch() -> None:
    model = masked_model(0.75).eval()
    x = batch(1).x
    torch.manual_seed(7)
    _, mask, _ = model.encode(x, 0.75)  # the mask the next same-seed pass will draw
    torch.manual_seed(7)
    _, logits = model.mix_forward(x)
    for which, should_change in ((1, False), (0, True)):  # 1 = removed, 0 = visible
        rows, cols = _patch_pixels(mask[0], which)
        x2 = x.clone()
        x2[0, :, rows, cols] += 5.0
        torch.manual_seed(7)
        _, logits2 = model.mix_forward(x2)
        assert torch.equal(logits, logits2) != should_change


def test_masked_mix_step_is_cheaper_than_sl_and_full_mix() -> None:
    model = masked_model(0.75)
    b = batch(8)
    masked = count_step_gflops(model, "mix", b, torch.enable_grad)
    model.mix_pass = "full"
    full = count_step_gflops(model, "mix", b, torch.enable_grad)
    sl = count_step_gflops(model, "sl", b, torch.enable_grad)
    assert masked < sl < full


def test_masked_mix_loss_still_mixes_alpha() -> None:
    model = masked_model()
    b = batch()
    torch.manual_seed(3)
    out = step_loss(model, "mix", b, alpha=0.2)
    torch.manual_seed(3)
    loss_ssl, logits = model.mix_forward(b.x)
    torch.testing.assert_close(out["loss"], 0.2 * loss_ssl + 0.8 * F.cross_entropy(logits, b.y))


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"model": "resnet_micro", "mix_pass": "masked"}, "mix_pass"),
        ({"model": "resnet_micro", "mix_mask_ratio": 0.5}, "mix_mask_ratio"),
        ({"mix_pass": "half"}, "mix_pass"),
        ({"mix_mask_ratio": 1.0}, "mix_mask_ratio"),
    ],
)
def test_config_rejects_what_the_masked_pass_cannot_do(values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TrialConfig.from_dict(values)
