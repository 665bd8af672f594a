"""The papers' options beyond Algorithm 1: ssl_pass, mixup_alpha, per-segment AdamW settings,
ssl_source all, the paper-scale spaces' budget and vit_tiny's decoder."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_spaces import SpaceError, build_space, load_space
from tests.support import TINY_RUN
from trainers import ConfigError, TrialConfig, run
from trainers.models import create_model
from trainers.pipeline import Trainer, make_optimizer
from trainers.runtime import resolve_runtime
from trainers.steps import Batch, SeededMixup, step_loss

SIZE = 16


def tiny(**changes: Any) -> TrialConfig:
    return TrialConfig.from_dict({**TINY_RUN, "seed": 2, **changes})


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"ssl_pass": "all_tokens"}, "ssl_pass"),
        ({"ssl_pass": "full", "model": "resnet_micro"}, "ssl_pass"),
        ({"mixup_alpha": -0.2}, "mixup_alpha"),
        ({"mixup_alpha": float("nan")}, "mixup_alpha"),
        ({"mixup_alpha": "0.2"}, "mixup_alpha"),
        ({"mixup_alpha": 0.2, "sl_accel": "cutmix"}, "mixup_alpha"),
        ({"betas_ssl": [0.9, 1.0]}, "betas_ssl"),
        ({"betas_sl": [0.9]}, "betas_sl"),
        ({"betas_sl": "0.9,x"}, "betas_sl"),
        ({"betas_sl": [0.9, True]}, "betas_sl"),
        ({"weight_decay_ssl": -0.1}, "weight_decay_ssl"),
        ({"weight_decay_sl": float("inf")}, "weight_decay_sl"),
        ({"weight_decay_sl": "0.1"}, "weight_decay_sl"),
        ({"ssl_source": "everything"}, "ssl_source"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        TrialConfig.from_dict(values)


def test_a_pair_built_in_code_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^betas_sl: "):
        TrialConfig(betas_sl=(0.9, 0.95, 0.99))


def test_defaults_change_nothing_and_round_trip() -> None:
    c = TrialConfig()
    assert (c.ssl_pass, c.mixup_alpha, c.ssl_source) == ("masked", 0.0, "same")
    for segment in ("ssl", "sup"):
        assert c.segment_betas(segment) == c.betas == (0.9, 0.95)
        assert c.segment_weight_decay(segment) == c.weight_decay == 0.05
    d = TrialConfig.from_dict({"betas_sl": "0.9, 0.999", "weight_decay_ssl": 0}).to_dict()
    assert d["betas_sl"] == [0.9, 0.999] and d["betas_ssl"] is None
    assert TrialConfig.from_dict(d).to_dict() == d


def test_segment_settings_override_only_their_segment() -> None:
    c = TrialConfig.from_dict(
        {"betas_ssl": [0.8, 0.9], "weight_decay_sl": 0.0, "betas": [0.5, 0.6], "weight_decay": 0.3}
    )
    assert c.segment_betas("ssl") == (0.8, 0.9) and c.segment_betas("sup") == (0.5, 0.6)
    # 0 is a setting, not "unset": it must not fall back to weight_decay
    assert c.segment_weight_decay("ssl") == 0.3 and c.segment_weight_decay("sup") == 0.0


def _hyper(opt: torch.optim.Optimizer) -> list[tuple[Any, ...]]:
    return [(g["betas"], g["weight_decay"], g["lr"], len(g["params"])) for g in opt.param_groups]


def test_make_optimizer_uses_each_segments_own_betas_and_decay() -> None:
    model = create_model("vit_micro", num_classes=10, image_size=SIZE, in_chans=1)
    base = TrialConfig()
    tuned = base.replace(betas_ssl=[0.9, 0.99], weight_decay_ssl=0.15)
    ssl, _ = make_optimizer(model, tuned, "ssl", 100)
    decays = sorted({g["weight_decay"] for g in ssl.param_groups})
    assert decays == [0.0, 0.15]  # norms and biases stay undecayed
    assert {g["betas"] for g in ssl.param_groups} == {(0.9, 0.99)}
    # the supervised segment is exactly what it was without the SSL settings
    assert _hyper(make_optimizer(model, tuned, "sup", 100)[0]) == _hyper(
        make_optimizer(model, base, "sup", 100)[0]
    )
    sup, _ = make_optimizer(model, base.replace(betas_sl=[0.9, 0.999]), "sup", 100)
    assert {g["betas"] for g in sup.param_groups} == {(0.9, 0.999)}
    assert _hyper(make_optimizer(model, base.replace(betas_sl=[0.9, 0.999]), "ssl", 100)[0]) == (
        _hyper(make_optimizer(model, base, "ssl", 100)[0])
    )


# ---- search spaces ---------------------------------------------------------------------------


def _space(parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "trainer": {"model": "vit_micro", "dataset": "digits"},
        "parameters": parameters,
        "objectives": [{"metric": "val_accuracy", "goal": "maximize"}],
    }


def test_per_segment_settings_are_searchable() -> None:
    space = build_space(
        _space(
            {
                "betas_sl": {"values": ["0.9,0.95", "0.9,0.999"]},
                "weight_decay_ssl": {"distribution": "log_uniform_values", "min": 0.01, "max": 0.3},
                "mixup_alpha": {"values": [0.0, 0.2, 0.8]},
                "ssl_pass": {"values": ["masked", "full"]},
                "betas_ssl": {"value": [0.9, 0.95]},
            }
        ),
        "inline.yaml",
    )
    c = space.trial_config({"betas_sl": "0.9,0.999", "weight_decay_ssl": 0.1, "mixup_alpha": 0.2})
    assert (c.betas_sl, c.betas_ssl, c.weight_decay_ssl) == ((0.9, 0.999), (0.9, 0.95), 0.1)


def test_a_list_choice_for_betas_points_to_the_string_form() -> None:
    with pytest.raises(SpaceError, match=r"parameters\.betas_sl\.values: .*'0\.9,0\.95'"):
        build_space(_space({"betas_sl": {"values": [[0.9, 0.95], [0.9, 0.999]]}}), "x.yaml")
    with pytest.raises(SpaceError, match=r"parameters\.betas_ssl\.values: betas_ssl"):
        build_space(_space({"betas_ssl": {"values": ["0.9,1.5"]}}), "x.yaml")


PAPER_SPACES = ("vit_tiny_cifar10", "vit_tiny_tinyimagenet", "resnet18_cifar10")


@pytest.mark.parametrize("name", PAPER_SPACES)
def test_paper_spaces_run_the_papers_budget_and_warmups(name: str) -> None:
    c = load_space(name).trial_config({}, pipeline="ssl_sl")
    assert (c.epochs_ssl, c.epochs_sl, c.batch_size) == (100, 100, 256)
    assert c.warmup_ssl * c.epochs_ssl == pytest.approx(20)  # paper: 20 SSL warm-up epochs
    assert c.warmup_sl * c.epochs_sl == pytest.approx(5)  # and 5 SL ones


def test_tinyimagenet_space_uses_the_papers_recipe() -> None:
    c = load_space("vit_tiny_tinyimagenet").trial_config({})
    assert (c.lr_ssl, c.lr_sl) == (1e-3, 2e-3)
    assert (c.segment_betas("ssl"), c.segment_betas("sup")) == ((0.9, 0.95), (0.9, 0.999))
    assert (c.segment_weight_decay("ssl"), c.segment_weight_decay("sup")) == (0.15, 0.05)


# ---- vit_tiny ------------------------------------------------------------------------------


def test_vit_tiny_decoder_is_the_papers() -> None:
    model = create_model("vit_tiny", num_classes=10, image_size=32, in_chans=3)
    dec = model.decoder
    assert model.patch_size == 2 and len(model.blocks) == 12  # ViT-T at 32 px
    assert dec.decoder_embed.out_features == 192 == model.cls_token.shape[-1]
    assert len(dec.decoder_blocks) == 2
    assert {b.attn.num_heads for b in dec.decoder_blocks} == {3}


# ---- ssl_pass --------------------------------------------------------------------------------


def _vit(ssl_pass: str):
    torch.manual_seed(0)
    model = create_model("vit_micro", num_classes=10, image_size=SIZE, in_chans=1)
    model.ssl_pass = ssl_pass
    return model


def _images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("ssl_pass", "full"), [("masked", False), ("full", True)])
def test_ssl_pass_sets_how_many_tokens_the_encoder_sees(ssl_pass: str, full: bool) -> None:
    model = _vit(ssl_pass)
    seen: list[int] = []
    model.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    model.ssl_loss(_images())
    length = model.num_patches
    visible = max(1, int(length * (1 - model.mask_ratio)))
    assert seen == [1 + (length if full else visible)]  # one encoder pass, cls first


def test_full_ssl_pass_scores_only_the_masked_patches() -> None:
    model = _vit("full")
    captured: dict[str, torch.Tensor] = {}
    original = model.reconstruction_loss

    def spy(x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        captured.update(pred=pred, mask=mask)
        return original(x, pred, mask)

    model.reconstruction_loss = spy
    x = _images()
    loss = model.ssl_loss(x)
    mask, pred = captured["mask"], captured["pred"]
    length = model.num_patches
    assert (mask.sum(1) == length - int(length * (1 - model.mask_ratio))).all()
    per_patch = ((pred - model.patchify(x)) ** 2).mean(-1)
    torch.testing.assert_close(loss, (per_patch * mask).sum() / mask.sum())


def test_full_ssl_pass_changes_only_the_ssl_step() -> None:
    masked, full = _vit("masked"), _vit("full")
    x, y = _images(), torch.randint(0, 10, (4,))
    b = Batch(x, y)
    torch.manual_seed(3)
    a = step_loss(masked, "mix", b, 0.5)["loss"]
    torch.manual_seed(3)
    assert step_loss(full, "mix", b, 0.5)["loss"] == a
    assert torch.equal(
        step_loss(masked, "sl", b, 0.0)["loss"], step_loss(full, "sl", b, 0.0)["loss"]
    )
    torch.manual_seed(3)
    m = step_loss(masked, "ssl", Batch(x, None), 0.0)["loss"]
    torch.manual_seed(3)
    assert step_loss(full, "ssl", Batch(x, None), 0.0)["loss"] != m


def test_full_ssl_pass_reaches_the_trainer_for_both_pipelines() -> None:
    for pipeline in ("mixtraining", "ssl_sl"):
        c = tiny(pipeline=pipeline, ssl_pass="full")
        assert Trainer(c, resolve_runtime(c)).model.ssl_pass == "full"


# ---- mixup -----------------------------------------------------------------------------------


def _mix(alpha: float, seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 4, 5][:n])
    mixed, soft = SeededMixup(alpha, 10, g)(x.clone(), y)
    return x, mixed, soft


def test_mixup_mixes_images_and_labels_with_one_lam() -> None:
    x, mixed, soft = _mix(0.4, seed=1)
    y, flipped = torch.arange(6), torch.arange(6).flip(0)
    lam = float(soft[0, 0])  # image 0 has label 0, its partner (image 5) label 5
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x.flip(0))
    expected = lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(flipped, 10).float()
    torch.testing.assert_close(soft, expected)  # no label smoothing


def test_mixup_draws_from_the_runs_generator_not_numpys_global_rng() -> None:
    np.random.seed(0)
    state = np.random.get_state()
    _, a, _ = _mix(0.4, seed=1)
    assert all(np.array_equal(u, v) for u, v in zip(state, np.random.get_state(), strict=True))
    np.random.seed(99)  # timm's own Mixup would now draw another lam
    _, b, _ = _mix(0.4, seed=1)
    _, c, _ = _mix(0.4, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mixup_lam_follows_beta_alpha_alpha() -> None:
    g = torch.Generator().manual_seed(0)
    mixup = SeededMixup(0.2, 10, g)
    lams = np.array([mixup._params_per_batch()[0] for _ in range(4000)])
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 0.178 for a = 0.2
    assert abs(lams.mean() - 0.5) < 0.02 and abs(lams.var() - 1 / (4 * 1.4)) < 0.01


def test_soft_targets_give_soft_cross_entropy() -> None:
    model = _vit("masked")
    x, y = _images(), torch.tensor([1, 2, 3, 4])
    soft = torch.softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(2)), 1)
    loss = step_loss(model, "sl", Batch(x, y, y_soft=soft), 0.0)["loss"]
    logits = model.sl_logits(x)
    torch.testing.assert_close(loss, -(soft * logits.log_softmax(1)).sum(1).mean())


def test_mixup_touches_supervised_batches_only() -> None:
    for phase in ("ssl", "mix", "sl"):  # fresh trainers: a mixup draw advances the generator
        plain, mixed = (Trainer(c, resolve_runtime(c)) for c in (tiny(), tiny(mixup_alpha=0.4)))
        a, b = next(iter(plain.batches(phase))), next(iter(mixed.batches(phase)))
        assert a.y_soft is None and (b.y_soft is None) == (phase == "ssl"), phase
        if phase == "ssl":
            assert torch.equal(a.x, b.x)
            continue
        assert torch.equal(a.y, b.y) and not torch.equal(a.x, b.x)
        assert torch.allclose(b.y_soft.sum(1), torch.ones(len(b.y)))


# ---- resume ----------------------------------------------------------------------------------


def _collect(config: TrialConfig, checkpoint: dict | None = None, stop_after: int | None = None):
    rows: list[dict] = []
    states: list[dict] = []

    def report(metrics: dict, state: dict) -> None:
        rows.append(metrics)
        states.append(state)
        if metrics["epoch"] == stop_after:
            raise KeyboardInterrupt

    try:
        run(config, report, checkpoint)
    except KeyboardInterrupt:
        pass
    return rows, states


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_resume_with_every_new_option_is_exact() -> None:
    config = tiny(  # ssl, mix, sl: mixup draws both before and after the checkpoint
        ssl_pass="full",
        mixup_alpha=0.4,
        ssl_source="all",
        betas_ssl=[0.9, 0.99],
        betas_sl=[0.85, 0.999],
        weight_decay_ssl=0.15,
        weight_decay_sl=0.01,
    )
    full_rows, full_states = _collect(config)
    part_rows, part_states = _collect(config, stop_after=2)
    rest_rows, rest_states = _collect(config, checkpoint=part_states[-1])
    assert [r["epoch"] for r in part_rows + rest_rows] == [1, 2, 3]
    for key in ("loss_sl", "val_accuracy", "train_gflops", "test_accuracy"):
        assert rest_rows[-1][key] == pytest.approx(full_rows[-1][key], rel=1e-6), key
    for name, ref in full_states[-1]["model"].items():
        torch.testing.assert_close(rest_states[-1]["model"][name], ref, rtol=1e-6, atol=1e-7)
