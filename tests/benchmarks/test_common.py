"""The benchmark scripts on a GPU host, with a mocked `torch.cuda` (timers, autocast, names)."""

from __future__ import annotations

import torch

from benchmarks import common, report
from tests.support import FakeCuda


def test_timings_drain_the_gpu_queue_around_each_measurement(monkeypatch) -> None:
    FakeCuda(count=1).install(monkeypatch)
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    common.median_seconds(lambda: events.append("step"), repeats=2, warmup=1, device="cuda")
    assert events == ["step", "sync", "step", "sync", "sync", "step", "sync"]


def test_step_autocasts_on_the_batchs_device(monkeypatch) -> None:
    seen = []
    real = torch.autocast

    def spy(device_type: str, **kwargs):  # noqa: ANN202
        seen.append(device_type)
        return real("cpu", **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    # `meta` stands for a GPU: model and batch live there, the autocast must follow them
    model = common.build("vit_micro", 28, 1, device="meta")
    batch = common.fake_batch(4, 1, 28, device="meta")
    common.train_step_fn(model, "sl", batch, bf16=False)()
    assert seen == ["meta"]


def test_report_names_the_gpu(monkeypatch) -> None:
    assert "no GPU" in report.machine()
    FakeCuda(count=1).install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB")
    assert "NVIDIA H100 80GB" in report.machine()
