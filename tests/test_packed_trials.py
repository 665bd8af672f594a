"""The packed-trials harness of the GPU smoke test, proven on the CPU (tests/packed_trials.py).

The GPU run itself (four vit_tiny trials at the bundled batch on one GPU) is in
tests/trainers/test_pipeline_gpu.py and needs a CUDA host; these tests show the harness starts
separate processes that train the real `Trainer` together, and reports a failed one instead of
hanging.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

from tests.packed_trials import (
    ROOT,
    SYNC_WARNING,
    count_syncs,
    peak_gb,
    processes_per_gpu,
    run_packed,
    train_counting_syncs,
    wait_for_peers,
)
from tests.support import TINY_RUN
from trainers import TrialConfig

# vit_micro on 8x8 grey images, batch 64: 4 steps per epoch, 3 epochs (SSL, MIX, SL)
CPU_RUN = {**TINY_RUN, "ssl_source": "same", "device": "cpu"}
SHAPE = {"train": 256, "size": 8, "chans": 1, "classes": 10}


@pytest.mark.parametrize(("share", "n"), [(0.25, 4), (0.5, 2), (1 / 3, 3), (0.3, 3), (1.0, 1)])
def test_processes_per_gpu_is_how_many_shares_ray_fits_on_one_gpu(share: float, n: int) -> None:
    assert processes_per_gpu(share) == n


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_processes_per_gpu_rejects_a_share_outside_one_gpu(share: float) -> None:
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        processes_per_gpu(share)


def test_count_syncs_counts_torch_sync_warnings_only() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn(f"{SYNC_WARNING} (an .item())", UserWarning, stacklevel=1)
        warnings.warn("some other warning", UserWarning, stacklevel=1)
    assert count_syncs(caught) == 3


class SyncingTrainer:
    """Stands for a CUDA trainer whose epochs emit `syncs[i]` sync warnings in `steps` steps."""

    def __init__(self, syncs: list[int], steps: int) -> None:
        self.rt = type("Rt", (), {"device": torch.device("cuda", 0)})()
        self.phases, self.epoch, self.syncs, self.steps = ["ssl"] * len(syncs), 0, syncs, steps
        self.step_counts: dict[str, int] = {}

    def run_epoch(self) -> None:
        for _ in range(self.syncs[self.epoch]):
            warnings.warn(SYNC_WARNING, UserWarning, stacklevel=1)
        self.step_counts["ssl"] = self.step_counts.get("ssl", 0) + self.steps
        self.epoch += 1


def test_sync_counting_is_per_epoch_and_always_switched_off(monkeypatch) -> None:
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    assert train_counting_syncs(SyncingTrainer([2, 0, 5], steps=7)) == ([7, 7, 7], [2, 0, 5])
    assert modes == ["warn", "default"]
    broken = SyncingTrainer([1], steps=7)
    broken.run_epoch = lambda: 1 / 0  # a failing epoch still restores the default mode
    with pytest.raises(ZeroDivisionError):
        train_counting_syncs(broken)
    assert modes[-2:] == ["warn", "default"]


def test_peak_is_what_a_trial_reports_on_cuda_and_none_on_a_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 3 * 1024**3)
    assert peak_gb(torch.device("cuda", 0)) == 3.0
    assert peak_gb(torch.device("cpu")) is None


def test_barrier_passes_when_every_peer_is_there(tmp_path: Path) -> None:
    (tmp_path / "ready-1").touch()
    wait_for_peers(tmp_path, "ready", 0, 2, timeout=5)
    assert (tmp_path / "ready-0").exists()


def test_barrier_stops_at_once_when_a_peer_failed(tmp_path: Path) -> None:
    (tmp_path / "failed-1").touch()
    with pytest.raises(RuntimeError, match="a peer failed \\(failed-1\\)"):
        wait_for_peers(tmp_path, "ready", 0, 2, timeout=60)


def test_barrier_gives_up_after_its_timeout(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="peers missing after 0.2 s"):
        wait_for_peers(tmp_path, "done", 0, 2, timeout=0.2)


@pytest.mark.timeout(300)  # over the default limit on two busy cores
def test_packed_trials_train_together_in_separate_processes() -> None:
    config = TrialConfig.from_dict(CPU_RUN).to_dict()
    # a generous deadline: on a loaded 2-core machine the imports alone took minutes
    results = run_packed(config, share=0.5, shape=SHAPE, timeout=800)
    assert len(results) == 2
    assert all("error" not in r for r in results), results
    assert len({r["pid"] for r in results}) == 2
    for r in results:
        assert r["device"] == "cpu"
        assert r["steps"] == [4, 4, 4]  # SSL, MIX, SL epochs of 256 / 64 steps
        assert r["syncs"] is None and r["peak_gb"] is None  # nothing to measure on a CPU
        assert r["estimate_gb"] > 0


def test_a_failing_trial_reports_its_error() -> None:
    # 29 px has no patch size for vit_micro: the trainer refuses it while it builds the model
    config = TrialConfig.from_dict(CPU_RUN).to_dict()
    [result] = run_packed(config, share=1.0, shape={**SHAPE, "size": 29}, timeout=800)
    assert result["returncode"] == 1
    assert "image_size 29 has no patch size" in result["error"]


def test_the_readme_gpu_command_runs_the_whole_smoke_test() -> None:
    import tests.trainers.test_pipeline_gpu as smoke

    readme = (ROOT / "README.md").read_text()
    [command] = re.findall(r"^\.venv/bin/python -m pytest (-m gpu .*)$", readme, re.MULTILINE)
    args = command.split()
    assert args[:2] == ["-m", "gpu"]  # selects tests marked gpu (and overrides `not slow`)
    paths = [a for a in args[2:] if not a.startswith("-")]
    assert [ROOT / p for p in paths] == [Path(smoke.__file__)]
    assert "gpu" in [m.name for m in smoke.pytestmark]  # every test of the file is marked
    tests = {name for name in vars(smoke) if name.startswith("test_")}
    assert {
        "test_smoke_run_has_no_sync_per_step_and_fits_its_memory_estimate",
        "test_gpu_and_cpu_count_the_same_flops",
        "test_four_packed_trials_at_the_bundled_batch_fit_and_do_not_sync_per_step",
    } == tests
