"""Step-cost calibration: seconds per training step of each kind, measured once, looked up after.

Hardware-aware NAS measures latency once per operation on the target device and then looks it
up (ProxylessNAS, FBNet, Once-for-All). Training steps get the same treatment: a run's
`calibrated_latency_s` is the steps it took of each kind times the calibrated seconds of that
kind, so it does not move when other processes share the machine.

The step kinds and the pricing of a run by the table live in `trainers.pricing`; this module
runs a `Trainer` to measure the table. The timing helpers here are also what
`benchmarks/step_costs.py` uses.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from trainers.accel import InputMixer
from trainers.config import TrialConfig
from trainers.errors import SetupError
from trainers.models import MixModel
from trainers.pipeline import Trainer
from trainers.runtime import available_cpus, resolve_device, resolve_runtime, synchronize
from trainers.steps import Batch, mixed_batches, step_loss

# Steps of one kind vary (batches differ, an epoch's last one is short), so a median of many
# steps is taken; how well the table replicates is measured by
# benchmarks/calibration_replication.py. A brief calibration (tune-app train) uses fewer.
WARMUP_STEPS, MEASURED_STEPS = 5, 60


# ------------------------------------------------------- timing (benchmarks/common.py builds on it)


def step_times(
    fn: Callable[[], None],
    repeats: int,
    warmup: int = 2,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds of each of `repeats` calls of `fn`, after `warmup` untimed calls; on a GPU the
    queue is drained around each timing, so a call is timed with the work it queued."""
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(dev)
        start = clock()
        fn()
        synchronize(dev)
        times.append(clock() - start)
    return times


def step_clock(device: torch.device, threads: int) -> tuple[str, Callable[[], float]]:
    """What calibration times a step with: the thread's CPU time for a one-thread CPU run,
    else the wall clock.

    A one-thread CPU step runs wholly in the calling thread, so its CPU time equals its wall
    time on an idle machine, but unlike the wall clock it does not count the time the thread
    waited while other processes had the core, so an oversubscribed machine inflates it far
    less than the wall clock (measured by `benchmarks/calibration_replication.py`).
    Several threads, or a GPU, leave the calling thread idle for part of a step: wall clock.
    """
    if device.type == "cpu" and threads == 1:
        return "thread_cpu", time.thread_time
    return "wall", time.perf_counter


class OthersBusy:
    """CPUs' worth of time that other processes used while the block ran (Linux; else None).

    What a calibration cannot exclude by its clock: a memory-hungry neighbour on another core
    slows each step through the shared cache and memory bus (measured by
    `benchmarks/calibration_replication.py`).
    """

    def __enter__(self) -> OthersBusy:
        self.value: float | None = None
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self._start is not None and end is not None:
            (wall0, busy0, own0), (wall1, busy1, own1) = self._start, end
            tick = os.sysconf("SC_CLK_TCK")
            self.value = max(0.0, ((busy1 - busy0) - (own1 - own0)) / tick / (wall1 - wall0))

    @staticmethod
    def _sample() -> tuple[float, int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                cpu = [int(v) for v in f.readline().split()[1:]]
            with open("/proc/self/stat", encoding="ascii") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None  # not Linux: nothing to report
        busy = sum(cpu[:3]) + sum(cpu[5:8])  # user nice system + irq softirq steal
        return time.monotonic(), busy, int(own[11]) + int(own[12])  # utime + stime


def train_step_fn(
    model: MixModel,
    kind: str,
    batch: Batch | Iterator[Batch],
    bf16: bool,
    opt: torch.optim.Optimizer | None = None,
) -> Callable[[], None]:
    """One full training step (forward, backward, AdamW) of phase `kind`, as the pipeline runs
    it; `batch` may be an endless iterator, so drawing the batch is part of the step."""
    opt = opt or torch.optim.AdamW(model.parameters(), lr=1e-4)
    device = next(model.parameters()).device.type

    def step() -> None:
        b = batch if isinstance(batch, Batch) else next(batch)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = step_loss(model, kind, b, alpha=0.5)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


# ---------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """Median seconds per step of each kind, with how they were measured."""

    table: dict[str, float]
    spread: dict[str, dict[str, float]]  # per kind: min, p25, p75, max (seconds)
    warmup: int
    steps: int
    settings: dict[str, Any]
    hardware: dict[str, Any]
    torch: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        fields = ("table", "spread", "warmup", "steps", "settings", "hardware", "torch")
        return cls(**{k: data[k] for k in fields})

    @property
    def key(self) -> str:
        """The node type this table was measured on (`hardware_key`)."""
        return hardware_key(self.hardware)


def hardware_key(hw: dict[str, Any]) -> str:
    """The node type a step-cost table holds for: CPU model, threads, device type and GPU name.

    The host name (`node`) is left out on purpose: two nodes of one type share one table, so a
    cluster of identical nodes is calibrated once.
    """
    parts = [str(hw["cpu"]), f"{hw['threads']} threads", str(hw["device"])]
    if hw.get("gpu"):
        parts.append(str(hw["gpu"]))
    return " | ".join(parts)


def run_hardware_key(config: TrialConfig) -> str:
    """The node type a run of `config` would be priced as on this process's node: the device
    and thread count `calibrate` (and the run) resolve, without building the run.

    Raises:
        SetupError: the config's device does not exist here (as the run itself would report).
    """
    try:
        device = resolve_device(config.device)
    except ValueError as e:
        raise SetupError(str(e)) from e
    return hardware_key(hardware(device, config.num_threads or available_cpus()))


def hardware(device: torch.device, threads: int) -> dict[str, Any]:
    """What the costs were measured on (`hardware_key` of it, without the host name, is the
    node type a table holds for)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass  # not Linux: platform's answer stands
    out = {"node": platform.node(), "cpu": cpu, "threads": threads, "device": device.type}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def endless(batches: Callable[[], Iterable[Batch]]) -> Iterator[Batch]:
    """Batches from fresh epochs forever (calibration may need more steps than one epoch)."""
    while True:
        yield from batches()


def kind_step(trainer: Trainer, kind: str) -> Callable[[], None]:
    """A closure running one real training step of `kind` on `trainer`'s data and model."""
    model, data, lam = trainer.model, trainer.data, trainer.config.lam
    if kind.startswith("mix_"):
        model.mix_pass = kind.removeprefix("mix_")
        return train_step_fn(model, "mix", endless(lambda: data.epoch("mix", lam)), trainer.rt.bf16)
    if kind.startswith("sl_"):
        c = trainer.config
        mixer = InputMixer(
            kind.removeprefix("sl_"), len(data.splits.train_x), c.sl_accel_ratio,
            c.sl_skip_fraction,
        )  # fmt: skip
        batches = endless(lambda: mixed_batches(data, mixer, model.feature_grid))
        return train_step_fn(model, "sl", batches, trainer.rt.bf16)
    return train_step_fn(model, kind, endless(lambda: data.epoch(kind, lam)), trainer.rt.bf16)


def calibrate(
    config: TrialConfig,
    kinds: Iterable[str],
    steps: int = MEASURED_STEPS,
    warmup: int = WARMUP_STEPS,
    wall_clock: bool = False,
) -> Calibration:
    """Measure the median seconds of one training step of each kind for `config`'s model,
    data, batch size, precision, device and thread count (`config.num_threads`).

    Every kind runs on the same fresh model and the run's own batches (drawing the batch is
    timed, as in training); the median of `steps` steps after `warmup` untimed ones, timed
    by `step_clock` (or by the wall clock with `wall_clock`, to compare). `settings` records
    the clock and how many CPUs' worth of time other processes used meanwhile
    (`others_busy_cpus`), which no clock can exclude entirely.
    """
    try:
        rt = resolve_runtime(config)
    except ValueError as e:  # e.g. cuda requested without a GPU: as run() reports it
        raise SetupError(str(e)) from e
    trainer = Trainer(config, rt)
    table, spread = {}, {}
    clock_name, clock = step_clock(rt.device, rt.threads)
    if wall_clock:
        clock_name, clock = "wall", time.perf_counter
    with OthersBusy() as others:
        for kind in sorted(set(kinds)):
            fn = kind_step(trainer, kind)
            times = sorted(step_times(fn, steps, warmup, rt.device.type, clock))
            q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
            table[kind] = statistics.median(times)
            spread[kind] = {"min": times[0], "p25": q[0], "p75": q[2], "max": times[-1]}
    settings = {
        "clock": clock_name,
        "others_busy_cpus": None if others.value is None else round(others.value, 2),
        "model": config.model,
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "precision": "bf16" if rt.bf16 else "fp32",
        "threads": rt.threads,
        "image_size": trainer.splits.image_size,
    }
    return Calibration(
        table, spread, warmup, steps, settings, hardware(rt.device, rt.threads), torch.__version__
    )
