"""Models: MAE stages checked against brute-force references, heads and gradients per preset."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainers.models import MODELS, MixModel, create_model
from trainers.models.registry import choose_patch_size
from trainers.models.vit_mae import ViTMAE, patchify, random_masking, unpatchify

SMALL = ("vit_micro", "resnet_micro")
VITS = tuple(m for m in MODELS if m.startswith("vit"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _model(name: str, image_size: int = 28, in_chans: int = 1) -> MixModel:
    return create_model(name, num_classes=10, image_size=image_size, in_chans=in_chans)


def _x(n: int = 4, chans: int = 1, size: int = 28) -> torch.Tensor:
    return torch.randn(n, chans, size, size)


def _grads(model: MixModel) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in model.named_parameters()}


# ---- patchify / masking ------------------------------------------------------------------


@pytest.mark.parametrize(("chans", "size", "p"), [(1, 28, 4), (3, 16, 2), (3, 8, 1)])
def test_patchify_round_trip_and_layout(chans: int, size: int, p: int) -> None:
    imgs = _x(2, chans, size)
    patches = patchify(imgs, p)
    g = size // p
    assert patches.shape == (2, g * g, p * p * chans)
    assert torch.equal(unpatchify(patches, p, chans), imgs)
    # patch (row 1, col 0) holds pixel block imgs[:, :, p:2p, 0:p] in (p, q, c) order
    if g > 1:
        ref = imgs[0, :, p : 2 * p, 0:p].permute(1, 2, 0).reshape(-1)
        assert torch.equal(patches[0, g], ref)


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.3, 0.9, 0.99])
def test_random_masking_counts_and_unshuffle(ratio: float) -> None:
    n, length, d = 3, 49, 5
    x = torch.randn(n, length, d)
    kept, mask, ids_restore = random_masking(x, ratio)
    keep = max(1, int(length * (1 - ratio)))
    assert kept.shape == (n, keep, d)
    assert torch.equal(mask.sum(dim=1), torch.full((n,), float(length - keep)))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    for i in range(n):
        # brute force: each kept token equals exactly one unmasked original token
        kept_rows = [j for j in range(length) if mask[i, j] == 0]
        found = sorted(int((x[i] == t).all(dim=1).nonzero()) for t in kept[i])
        assert found == kept_rows
        # ids_restore[j] is where original position j sits in the shuffled [kept, removed] list
        for j in range(length):
            slot = int(ids_restore[i, j])
            assert (slot < keep) == (mask[i, j] == 0)
            if slot < keep:
                assert torch.equal(kept[i, slot], x[i, j])
    # unshuffle as the decoder does: kept + placeholders gathered back restores x where kept
    filler = torch.zeros(n, length - keep, d)
    full = torch.gather(
        torch.cat([kept, filler], 1), 1, ids_restore.unsqueeze(-1).expand(-1, -1, d)
    )
    expected = x * (1 - mask).unsqueeze(-1)
    assert torch.equal(full, expected)


def test_random_masking_ratio_zero_keeps_order() -> None:
    x = torch.randn(2, 16, 4)
    kept, mask, ids_restore = random_masking(x, 0.0)
    assert torch.equal(kept, x)
    assert not mask.any()
    assert torch.equal(ids_restore, torch.arange(16).expand(2, 16))


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_random_masking_rejects_bad_ratio(ratio: float) -> None:
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(torch.randn(1, 4, 2), ratio)


# ---- ViT stages --------------------------------------------------------------------------


def test_reconstruction_loss_only_counts_masked_patches() -> None:
    model = _model("vit_micro")
    assert isinstance(model, ViTMAE)
    x = _x()
    _, mask, _ = model.encode(x, 0.75)
    pred = torch.randn(4, model.num_patches, model.patch_size**2)
    loss = model.reconstruction_loss(x, pred, mask)
    # hand-computed reference: per-patch MSE, averaged over removed patches
    target, total, count = model.patchify(x), 0.0, 0
    for i in range(4):
        for j in range(model.num_patches):
            if mask[i, j] == 1:
                total += ((pred[i, j] - target[i, j]) ** 2).mean().item()
                count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    i, j_keep = 0, int((mask[0] == 0).nonzero()[0])
    j_gone = int((mask[0] == 1).nonzero()[0])
    perturbed = pred.clone()
    perturbed[i, j_keep] += 5.0
    assert torch.equal(model.reconstruction_loss(x, perturbed, mask), loss)
    perturbed[i, j_gone] += 5.0
    assert model.reconstruction_loss(x, perturbed, mask) != loss


def test_reconstruction_loss_without_removed_patches_scores_all() -> None:
    model = _model("vit_micro")
    x = _x()
    pred = torch.randn(4, model.num_patches, model.patch_size**2)
    ref = ((pred - model.patchify(x)) ** 2).mean()
    zeros = torch.zeros(4, model.num_patches)
    assert model.reconstruction_loss(x, pred, zeros).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("name", VITS)
def test_encode_token_counts(name: str) -> None:
    model = _model(name, image_size=16)
    length = model.num_patches
    feats, mask, ids = model.encode(_x(2, 1, 16), 0.0)
    assert feats.shape == (2, 1 + length, model.patch_embed.proj.out_channels)
    assert not mask.any() and torch.equal(ids, torch.arange(length).expand(2, length))
    feats, mask, _ = model.encode(_x(2, 1, 16), model.mask_ratio)
    assert feats.shape[1] == 1 + int(length * (1 - model.mask_ratio))


def test_classify_on_token_subset_and_mask_features() -> None:
    model = _model("vit_micro").eval()
    feats, _, _ = model.encode(_x(), 0.0)
    assert model.classify(feats[:, :5]).shape == (4, 10)
    kept, mask, ids = model.mask_features(feats, 0.75)
    keep = int(model.num_patches * 0.25)
    assert kept.shape == (4, 1 + keep, feats.shape[2])
    assert torch.equal(kept[:, 0], feats[:, 0])  # cls stays first
    assert mask.sum(1).eq(model.num_patches - keep).all()
    assert model.reconstruct(kept, ids).shape == (4, model.num_patches, model.patch_size**2)
    with pytest.raises(ValueError, match="tokens"):
        model.mask_features(kept, 0.75)


# ---- step forwards and gradients ---------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_mix_forward_reaches_every_parameter(name: str) -> None:
    # 16 px keeps vit_tiny / resnet18 cheap; this also catches zero-initialised branches
    model = _model(name, image_size=16)
    y = torch.randint(0, 10, (4,))
    loss_ssl, logits = model.mix_forward(_x(size=16))
    assert loss_ssl.ndim == 0 and logits.shape == (4, 10)
    (loss_ssl + F.cross_entropy(logits, y)).backward()
    missing = [n for n, g in _grads(model).items() if g is None or not g.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", SMALL)
def test_mix_ssl_loss_alone_trains_the_shared_backbone(name: str) -> None:
    model = _model(name)
    loss_ssl, _ = model.mix_forward(_x())
    loss_ssl.backward()
    heads = {id(p) for p in [*model.head.parameters(), *model.decoder.parameters()]}
    backbone = [p for p in model.parameters() if id(p) not in heads]
    assert backbone and all(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone)
    assert all(p.grad is None for p in model.head.parameters())


@pytest.mark.parametrize("name", SMALL)
def test_sl_logits_leaves_decoder_untouched(name: str) -> None:
    model = _model(name)
    F.cross_entropy(model.sl_logits(_x()), torch.randint(0, 10, (4,))).backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("name", SMALL)
def test_ssl_loss_leaves_head_untouched(name: str) -> None:
    model = _model(name)
    model.ssl_loss(_x()).backward()
    assert all(p.grad is None for p in model.head.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_resnet_rejects_masking_and_reconstructs_full_image() -> None:
    model = _model("resnet_micro")
    with pytest.raises(ValueError, match="mask_ratio"):
        model.encode(_x(), 0.5)
    assert model.mask_ratio == 0.0
    x = _x()
    feats, mask, ids = model.encode(x)
    assert mask is None and ids is None
    pred = model.reconstruct(feats, ids)
    assert pred.shape == x.shape  # 28 px: 4x4 features -> 32 px -> resized to 28
    assert model.ssl_loss(x).item() == pytest.approx(F.mse_loss(pred, x).item(), rel=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_presets_build_and_forward_at_32px(name: str) -> None:
    model = create_model(name, num_classes=7, image_size=32, in_chans=3).eval()
    x = _x(2, 3, 32)
    with torch.no_grad():
        assert model.sl_logits(x).shape == (2, 7)
        loss_ssl, logits = model.mix_forward(x)
    assert logits.shape == (2, 7) and loss_ssl.ndim == 0 and torch.isfinite(loss_ssl)


# ---- registry ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "target", "patch"),
    [
        (32, 16, 2),
        (64, 16, 4),
        (28, 16, 2),
        (28, 7, 4),
        (32, 7, 4),
        (64, 7, 8),
        (8, 7, 1),
        (48, 7, 6),
    ],
)
def test_choose_patch_size(size: int, target: int, patch: int) -> None:
    # (48, 7): grids 8 and 6 tie, the finer grid (8, patch 6) wins
    assert choose_patch_size(size, target) == patch


def test_create_model_errors() -> None:
    with pytest.raises(ValueError, match="resnet_micro"):  # the message lists MODELS
        create_model("vit_huge", 10, 32, 3)
    with pytest.raises(ValueError, match="image_size 29"):
        create_model("vit_micro", 10, 29, 3)
    with pytest.raises(ValueError, match="image_size"):
        create_model("resnet_micro", 10, 4, 3)
    with pytest.raises(ValueError, match="override"):
        create_model("vit_micro", 10, 28, 1, depth_typo=3)


def test_create_model_override_mask_ratio() -> None:
    assert create_model("vit_micro", 10, 28, 1, mask_ratio=0.5).mask_ratio == 0.5


# ---- compute reuse and decoder unshuffle ---------------------------------------------------


def _token_counts(model: ViTMAE, step: str) -> tuple[list[int], list[int]]:
    enc, dec = [], []
    h1 = model.blocks[0].register_forward_hook(lambda m, a, o: enc.append(a[0].shape[1]))
    h2 = model.decoder.decoder_blocks[0].register_forward_hook(
        lambda m, a, o: dec.append(a[0].shape[1])
    )
    getattr(model, step)(_x())
    h1.remove()
    h2.remove()
    return enc, dec


def test_encoder_runs_once_per_step_with_the_right_tokens() -> None:
    model = _model("vit_micro")
    length = model.num_patches
    keep = int(length * (1 - model.mask_ratio))
    assert _token_counts(model, "mix_forward") == ([1 + length], [1 + length])
    assert _token_counts(model, "ssl_loss") == ([1 + keep], [1 + length])
    assert _token_counts(model, "sl_logits") == ([1 + length], [])


def test_classify_ignores_cls_token() -> None:
    model = _model("vit_micro").eval()
    feats, _, _ = model.encode(_x(), 0.0)
    moved = feats.clone()
    moved[:, 0] += 3.0
    assert torch.equal(model.classify(moved), model.classify(feats))


def test_decoder_unshuffle_matches_loop_reference() -> None:
    model = _model("vit_micro").eval()
    dec = model.decoder
    feats, _, _ = model.encode(_x(), 0.0)
    kept, mask, ids = model.mask_features(feats, 0.75)
    pred = model.reconstruct(kept, ids)
    emb = dec.decoder_embed(kept)
    rows = []
    for i in range(kept.shape[0]):  # original order: kept token where mask 0, mask token else
        seq = [emb[i, 0]]
        for j in range(model.num_patches):
            seq.append(emb[i, 1 + int(ids[i, j])] if mask[i, j] == 0 else dec.mask_token[0, 0])
        rows.append(torch.stack(seq))
    x = torch.stack(rows) + dec.decoder_pos_embed
    for blk in dec.decoder_blocks:
        x = blk(x)
    ref = dec.decoder_pred(dec.decoder_norm(x))[:, 1:]
    torch.testing.assert_close(pred, ref)
