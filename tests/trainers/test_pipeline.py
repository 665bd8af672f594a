"""The three-phase loop on tiny real data (scikit-learn digits): reports, resume, routing."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.support import PINNED, TINY_RUN, collect
from trainers import NonFiniteLossError, SetupError, TrialConfig, run
from trainers.models import create_model
from trainers.pipeline import Trainer
from trainers.runtime import resolve_runtime
from trainers.steps import Batch, step_loss


def tiny(**changes: Any) -> TrialConfig:
    base = {**TINY_RUN, "anneal": "linear", "seed": 3}
    return TrialConfig.from_dict({**base, **changes})


@pytest.mark.parametrize(
    ("pipeline", "phases"),
    [
        ("mixtraining", ["ssl", "mix", "sl"]),
        ("ssl_sl", ["ssl", "ssl", "sl", "sl"]),
        ("sl", ["sl", "sl"]),
    ],
)
def test_reports_follow_the_plan_with_pinned_metrics(pipeline: str, phases: list[str]) -> None:
    rows, _, final = collect(tiny(pipeline=pipeline))
    assert [r["phase"] for r in rows] == phases
    assert [r["epoch"] for r in rows] == list(range(1, len(phases) + 1))
    for r in rows:
        assert PINNED <= set(r)
        if r["phase"] == "ssl":  # no classifier gradient yet: no validation pass
            assert r["val_accuracy"] is None
        else:
            assert 0.0 <= r["val_accuracy"] <= 1.0
        assert (r["loss_ssl"] is None) == (r["phase"] == "sl")
        assert (r["loss_sl"] is None) == (r["phase"] == "ssl")
    latencies = [r["train_latency_s"] for r in rows]
    assert all(b > a for a, b in zip(latencies, latencies[1:], strict=False))
    assert "test_accuracy" in final  # the last epoch adds it, and no earlier one
    assert not any("test_accuracy" in r for r in rows[:-1])
    assert final is rows[-1]


def test_flops_follow_the_step_costs() -> None:
    """A masked MAE step is cheaper than an SL step; a merged MIX step costs more than SL."""
    trainer = Trainer(tiny(), resolve_runtime(tiny()))
    while trainer.epoch < len(trainer.phases):
        trainer.run_epoch()
    f = trainer.step_gflops
    assert f["ssl"] < f["sl"] < f["mix"]
    batch = trainer.config.batch_size  # f is per image; every step is a full batch here
    expected = sum(f[p] * trainer.data.steps(p) * batch for p in trainer.phases)
    assert trainer.history[-1]["train_gflops"] == pytest.approx(expected)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_resume_matches_uninterrupted_run() -> None:
    config = tiny(epochs_ssl=3, epochs_sl=3, rho=0.67)  # ssl, mix, mix, sl
    full_rows, full_states, _ = collect(config)
    for k in (1, 2):  # interrupted at the SSL->MIX segment boundary and inside the MIX phase
        part_rows, part_states, final = collect(config, stop_after=k)
        assert final is None and len(part_rows) == k
        rest_rows, rest_states, _ = collect(config, checkpoint=part_states[-1])
        assert [r["epoch"] for r in rest_rows] == list(range(k + 1, len(full_rows) + 1))
        for a, b in zip(full_rows[k:], rest_rows, strict=True):
            for key in ("loss_ssl", "loss_sl", "val_accuracy", "train_gflops", "test_accuracy"):
                if a.get(key) is None:
                    assert b.get(key) is None, key
                else:
                    assert b.get(key) == pytest.approx(a[key], rel=1e-6, abs=1e-7), key
        ref, got = full_states[-1]["model"], rest_states[-1]["model"]
        for name in ref:
            torch.testing.assert_close(got[name], ref[name], rtol=1e-6, atol=1e-7)


def test_resume_refuses_a_different_config() -> None:
    _, states, _ = collect(tiny(), stop_after=1)
    with pytest.raises(ValueError, match="different config"):
        collect(tiny(rho=1.0), checkpoint=states[-1])


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["vit_micro", "resnet_micro"])
def test_mix_step_sends_both_losses_into_the_backbone(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, image_size=16, in_chans=1)
    batch = Batch(torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,)))
    backbone = [n for n, _ in model.named_parameters() if not n.startswith(("head", "decoder"))]
    for part in ("loss_ssl", "loss_sl"):
        model.zero_grad(set_to_none=True)
        step_loss(model, "mix", batch, alpha=0.5)[part].backward()
        g = _grads(model)
        touched = [n for n in backbone if g[n] is not None and g[n].abs().sum() > 0]
        assert len(touched) > 0.9 * len(backbone), f"{part} reaches too little of the backbone"


@pytest.mark.parametrize("name", ["vit_micro", "resnet_micro"])
def test_sl_step_gives_the_decoder_no_gradient(name: str) -> None:
    model = create_model(name, num_classes=10, image_size=16, in_chans=1)
    batch = Batch(torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,)))
    step_loss(model, "sl", batch, alpha=0.5)["loss"].backward()
    decoder = {n: p.grad for n, p in model.named_parameters() if n.startswith("decoder")}
    assert decoder and all(g is None for g in decoder.values())


def test_mix_loss_is_the_alpha_weighted_sum() -> None:
    torch.manual_seed(0)
    model = create_model("vit_micro", num_classes=10, image_size=16, in_chans=1)
    batch = Batch(torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,)))
    torch.manual_seed(1)
    out = step_loss(model, "mix", batch, alpha=0.3)
    torch.manual_seed(1)
    loss_ssl, logits = model.mix_forward(batch.x)
    expected = 0.3 * loss_ssl + 0.7 * F.cross_entropy(logits, batch.y)
    torch.testing.assert_close(out["loss"], expected)


def test_non_finite_loss_names_phase_and_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainers.models.base import MixModel

    def nan_forward(self: MixModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss_ssl, logits = original(self, x)
        return loss_ssl * float("nan"), logits

    original = MixModel.mix_forward
    monkeypatch.setattr(MixModel, "mix_forward", nan_forward)
    with pytest.raises(NonFiniteLossError, match=r"phase 'mix', epoch 2"):
        collect(tiny())


def test_missing_dataset_is_a_setup_error(tmp_path) -> None:
    with pytest.raises(SetupError, match="fashion_mnist"):
        run(tiny(dataset="fashion_mnist", data_dir=str(tmp_path)), lambda m, s: None)


def test_cuda_request_without_gpu_is_a_setup_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SetupError, match="cuda"):
        run(tiny(device="cuda"), lambda m, s: None)


def test_a_checkpoint_resumes_on_another_device_or_thread_count() -> None:
    from trainers.pipeline import same_recipe

    a = tiny().to_dict()
    assert same_recipe(a, {**a, "device": "cpu", "num_threads": 2, "eval_batch_size": 64})
    assert not same_recipe(a, {**a, "rho": 0.9})
