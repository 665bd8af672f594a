"""No host round trip per step, proven with the `meta` device standing in for a GPU.

Meta tensors have shapes but no data: any op mixing them with CPU tensors is what would be an
implicit host<->GPU copy, and any read of their values (`.item()`, a boolean mask) raises, as a
GPU sync would stall. The run's sanctioned reads all go through `trainers.runtime.host`, which
the tests replace by a counted stand-in returning plausible CPU values.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import trainers.accel
import trainers.pipeline
from tests.support import TINY_RUN
from trainers import TrialConfig
from trainers.pipeline import Trainer
from trainers.runtime import Runtime
from trainers.steps import step_loss

META = Runtime(torch.device("meta"), False, 1)
COPIES = {torch.ops.aten._to_copy, torch.ops.aten.copy_, torch.ops.aten.to}


class DeviceTraffic(TorchDispatchMode):
    """Counts copies between the CPU and `meta`, and ops that mix the two devices."""

    def __init__(self) -> None:
        super().__init__()
        self.copies = 0
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in tensors}
        if devices == {"cpu", "meta"}:
            if func.overloadpacket in COPIES:
                self.copies += 1
            elif any(t.device.type == "cpu" and t.dim() > 0 for t in tensors):
                self.mixed.append(str(func))  # a GPU would copy (or refuse) here, every step
        return out


@pytest.fixture
def reads(monkeypatch):
    """Replace the device reads by CPU values (random 0/1, so mixTrain decides something)."""
    calls = []
    g = torch.Generator().manual_seed(0)

    def fake_host(values: torch.Tensor) -> torch.Tensor:
        assert values.device.type == "meta", "host() is for device values"
        calls.append(tuple(values.shape))
        return torch.randint(0, 2, values.shape, generator=g).to(values.dtype)

    monkeypatch.setattr(trainers.pipeline, "host", fake_host)
    monkeypatch.setattr(trainers.accel, "host", fake_host)
    return calls


# Small pools so the step counts stay low: 10% of digits' training images are labelled.
# An SSL, a MIX and two SL epochs with CutMix composites (mixing starts in the second), each
# followed by an evaluation.
GROWTH_RUN = {
    "labeled_fraction": 0.1,
    "ssl_source": "same",
    "epochs_sl": 3,
    "sl_accel": "cutmix",
}


def epoch_traffic(settings: dict, batch_size: int) -> tuple[list[tuple], list[int], list[str]]:
    """Run every epoch of a tiny run on `meta`; per epoch: (phase, copies), host reads."""
    config = TrialConfig.from_dict({**TINY_RUN, **settings, "batch_size": batch_size})
    trainer = Trainer(config, META)
    per_epoch, mixed = [], []
    while trainer.epoch < len(trainer.phases):
        with DeviceTraffic() as traffic:
            metrics = trainer.run_epoch()
        per_epoch.append((metrics["phase"], traffic.copies))
        mixed += traffic.mixed
    steps = [trainer.data.steps(p) for p in trainer.phases]
    return per_epoch, steps, mixed


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_device_traffic_per_epoch_does_not_grow_with_the_steps(reads) -> None:
    few, few_steps, mixed_few = epoch_traffic(GROWTH_RUN, batch_size=48)
    reads_few = list(reads)
    reads.clear()
    many, many_steps, mixed_many = epoch_traffic(GROWTH_RUN, batch_size=12)
    assert all(m >= 3 * f for m, f in zip(many_steps, few_steps, strict=True))  # the premise
    assert few == many, "host<->device copies per epoch grew with the number of steps"
    assert len(reads) == len(reads_few), "device reads per run grew with the number of steps"
    assert not mixed_few and not mixed_many, f"CPU tensors mixed into device ops: {mixed_many}"
    assert max(copies for _, copies in many) <= 8


STEP_RUNS = {
    "vit": {"ssl_source": "unlabeled", "sl_accel": "mixup"},  # MIX mixes in SSL images
    "vit_masked": {"ssl_source": "unlabeled", "mix_pass": "masked", "sl_accel": "cutmix"},
    "resnet": {"model": "resnet_micro", "ssl_source": "unlabeled", "sl_accel": "cutmix"},
}


@pytest.mark.parametrize("run", sorted(STEP_RUNS))
def test_a_batch_of_every_step_kind_stays_on_the_device(run: str, reads) -> None:
    """One training step per kind (SSL, MIX, SL, a mixTrain composite) on `meta`."""
    config = TrialConfig.from_dict({**TINY_RUN, **STEP_RUNS[run]})
    trainer = Trainer(config, META)
    trainer.mixer.mixed[:] = True  # pair every sample, so the batch is all composites
    trainer.start_segment("ssl")
    for phase in ("ssl", "mix", "sl"):
        with DeviceTraffic() as traffic:
            batch = next(iter(trainer.batches(phase)))
            losses = step_loss(trainer.model, phase, batch, alpha=0.5)
            losses["loss"].backward()
            trainer.optimizer.step()
            if batch.items is not None:
                it = batch.items
                trainer.mixer.record(
                    it.a, it.b, losses["item_loss_a"], losses["item_loss_b"], losses["correct_a"]
                )
        assert batch.x.device.type == "meta" and not traffic.mixed, (phase, traffic.mixed)
        assert (phase == "sl") == (batch.items is not None)
    trainer.mixer.end_epoch()
    assert reads == [(2, len(trainer.splits.train_x))]  # the mixer's one read of its epoch


def test_overhead_benchmark_builds_its_model_on_the_datas_device(monkeypatch) -> None:
    from benchmarks import overhead

    monkeypatch.setattr(overhead, "resolve_runtime", lambda config: META)
    built = []
    real = overhead.model_for
    monkeypatch.setattr(
        overhead, "model_for", lambda *a, **k: built.append(real(*a, **k)) or built[-1]
    )
    config = TrialConfig.from_dict({**TINY_RUN, "pipeline": "sl"})
    overhead.minimal(config)  # a CPU model fed meta data would raise here
    assert {p.device.type for p in built[0].parameters()} == {"meta"}
