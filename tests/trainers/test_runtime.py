"""Device handling for GPU runs, proven on a CPU machine with a mocked `torch.cuda`.

Nothing here touches a real GPU: the mocks stand for what a CUDA host reports, and the
assertions check what our code does with it (which device, which RNG state, which precision).
"""

from __future__ import annotations

import pytest
import torch

from search_spaces import SpaceError
from search_spaces.validate import build_space
from tests.support import SPACE, TINY_RUN, FakeCuda
from trainers import TrialConfig
from trainers.pipeline import Trainer
from trainers.runtime import Runtime, apply_cuda_flags, resolve_bf16, resolve_device
from tune_app.trial import local_gpu_index


def tiny_trainer() -> Trainer:
    config = TrialConfig.from_dict({**TINY_RUN, "epochs_ssl": 1, "epochs_sl": 1})
    return Trainer(config, Runtime(torch.device("cpu"), False, 1))


def test_checkpoint_holds_only_the_trials_own_cuda_rng_state(monkeypatch) -> None:
    # A trial on cuda:1 of a 4-GPU worker, resumed by a worker that sees a single GPU.
    trainer = tiny_trainer()
    trainer.start_segment("ssl")
    saver = FakeCuda(count=4, current=1).install(monkeypatch)
    trainer.rt = Runtime(torch.device("cuda", 1), False, 1)
    state = trainer.state_dict()
    assert torch.equal(state["rng"]["cuda"], saver.states[1])
    loader = FakeCuda(count=1).install(monkeypatch)
    trainer.rt = Runtime(torch.device("cuda", 0), False, 1)
    trainer.load_state_dict(state)  # raised "invalid device ordinal" when all four were saved
    assert torch.equal(loader.states[0], saver.states[1])


def test_a_cpu_trial_on_a_gpu_host_saves_and_restores_no_cuda_state(monkeypatch) -> None:
    fake = FakeCuda(count=2).install(monkeypatch)
    trainer = tiny_trainer()
    trainer.start_segment("ssl")
    state = trainer.state_dict()
    assert state["rng"]["cuda"] is None
    trainer.load_state_dict(state)
    assert [int(s) for s in fake.states.values()] == [0, 1]


def test_cuda_device_is_the_current_one(monkeypatch) -> None:
    fake = FakeCuda(count=4).install(monkeypatch)
    fake.set_device(local_gpu_index(["2"], None))
    assert resolve_device("auto") == torch.device("cuda", 2)
    assert resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("assigned", "visible", "index"),
    [
        (["0"], "0", 0),  # Ray's default: the worker sees only its GPU
        ([3], "3", 0),
        (["3"], None, 3),  # RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES, every GPU visible
        (["5"], "4,5,6", 1),  # NOSET under a node-level CUDA_VISIBLE_DEVICES
        (["1", "2"], "1,2", 0),
    ],
)
def test_local_gpu_index_follows_what_ray_assigned(assigned, visible, index) -> None:
    assert local_gpu_index(assigned, visible) == index


def test_local_gpu_index_rejects_an_id_the_process_cannot_see() -> None:
    with pytest.raises(RuntimeError, match="CUDA_VISIBLE_DEVICES"):
        local_gpu_index(["7"], "0,1")


def test_bf16_auto_only_where_native(monkeypatch) -> None:
    cuda = torch.device("cuda", 0)
    FakeCuda(count=1, bf16_native=False).install(monkeypatch)  # V100 / T4: emulated bf16
    assert resolve_bf16("auto", "vit_tiny", cuda) is False
    assert resolve_bf16("bf16", "vit_tiny", cuda) is True  # asked for explicitly
    FakeCuda(count=1, bf16_native=True).install(monkeypatch)  # A100 / H100
    assert resolve_bf16("auto", "vit_tiny", cuda) is True


@pytest.fixture
def backend_flags():
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    yield
    (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) = saved


def test_fp32_on_cuda_enables_tf32_and_resnet_autotuning(backend_flags) -> None:
    apply_cuda_flags(torch.device("cuda", 0), "resnet18", bf16=False)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.benchmark
    apply_cuda_flags(torch.device("cuda", 0), "vit_tiny", bf16=True)
    assert not torch.backends.cudnn.benchmark


def test_cpu_runs_leave_cuda_flags_alone(backend_flags) -> None:
    apply_cuda_flags(torch.device("cpu"), "resnet18", bf16=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark


@pytest.mark.parametrize("gpu", [1.5, 2])
def test_more_than_one_gpu_per_trial_is_rejected(gpu) -> None:
    with pytest.raises(SpaceError, match="resources.gpu"):
        build_space({**SPACE, "resources": {"cpu": 1, "gpu": gpu}}, "space.yaml")


def noset_worker(monkeypatch: pytest.MonkeyPatch, gpu: str, share: float) -> FakeCuda:
    """A Ray worker under RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: it sees all four GPUs of
    its node, and Ray gave it `gpu` (a `share` of it)."""
    import ray

    fake = FakeCuda(count=4).install(monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [gpu])
    context = type("Context", (), {"get_assigned_resources": lambda self: {"GPU": share}})
    monkeypatch.setattr(ray, "get_runtime_context", context)
    return fake


def test_trial_runs_on_the_gpu_ray_assigned_under_noset(monkeypatch) -> None:
    from tune_app import trial

    fake = noset_worker(monkeypatch, "3", 0.25)
    caps = []
    cap = lambda share, device: caps.append((share, device))  # noqa: E731
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", cap)
    config = trial.trial_config({**TINY_RUN, "device": "auto"}, {})
    assert resolve_device(config.device) == torch.device("cuda", 3)
    assert fake.current == 3
    assert caps == [(0.25, 3)]  # the allocator capped at the trial's share, on its own GPU


def test_calibration_and_probe_tasks_measure_the_gpu_ray_assigned(monkeypatch) -> None:
    """The step-cost calibration and the node-type probe run as Ray tasks on a trial's slot:
    they must price the GPU the trials get, not GPU 0 (which a bare task would use here)."""
    from trainers.calibrate import run_hardware_key
    from tune_app import orchestrate, trial

    config = TrialConfig.from_dict({**TINY_RUN, "device": "auto"})
    fake = noset_worker(monkeypatch, "2", 1.0)
    names = lambda device: f"GPU-{torch.device(device).index}"  # noqa: E731
    monkeypatch.setattr(torch.cuda, "get_device_name", names)
    assert run_hardware_key(config).endswith("| cuda | GPU-0")  # unplaced: the wrong GPU
    assert trial.on_slot(run_hardware_key)(config).endswith("| cuda | GPU-2")
    assert fake.current == 2
    # Both tasks orchestrate builds are wrapped so (Ray itself stubbed: no cluster here).
    built = []
    remote = lambda **resources: lambda fn: built.append(fn) or fn  # noqa: E731
    monkeypatch.setattr(orchestrate.ray, "remote", remote)
    space = build_space({**SPACE, "resources": {"cpu": 1, "gpu": 0.5}}, "space.yaml")
    orchestrate.on_trial_slots(space)
    monkeypatch.setattr(orchestrate, "trial_nodes", lambda space: [])
    monkeypatch.setattr(orchestrate, "gather", lambda refs: [])
    orchestrate.probe_node_types(space)
    assert [getattr(fn, "__wrapped__", None).__name__ for fn in built] == [
        "calibrate",
        "run_hardware_key",
    ]
