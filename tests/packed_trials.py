"""Several trials packed on one GPU, as Ray packs fractional ones: the GPU smoke test's harness.

`run_packed(config, share, shape)` starts `processes_per_gpu(share)` separate Python processes
(`gpu: 0.25` -> four), each a stand-in for one Ray trial: it caps its CUDA allocator at its
share with the trial's own code (`tune_app.trial.cap_gpu_memory`), builds the real `Trainer`
on synthetic data of the given shape, waits until every process is ready, trains every epoch
of its plan, counts the device syncs each epoch reports under
`torch.cuda.set_sync_debug_mode("warn")`, and then holds its memory until every process has
finished, so that all of them reach their peaks while all the others are alive. Each returns
a dict (see `run_worker`); a process that dies or raises (an out-of-memory error included)
returns its error instead of hanging the others.

On a CPU it runs the same way (no cap, no sync counting, no GPU peak), which is how CPU CI
proves the harness itself (tests/test_packed_trials.py); the GPU run is in
tests/trainers/test_pipeline_gpu.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

from trainers.data import Splits

ROOT = Path(__file__).resolve().parents[1]
SYNC_WARNING = "called a synchronizing CUDA operation"  # torch's text in sync debug mode "warn"


def processes_per_gpu(share: float) -> int:
    """How many trials asking for `share` of a GPU Ray places on one GPU (0.25 -> 4)."""
    if not 0 < share <= 1:
        raise ValueError(f"a GPU share is in (0, 1], got {share}")
    return int(1 / share + 1e-9)


def synthetic_splits(
    device: torch.device, train: int, size: int, chans: int = 3, classes: int = 10
) -> Splits:
    """Seeded random uint8 images and labels; train/val (and data statistics) on `device`,
    test on the CPU, as `trainers.pipeline.load_splits` leaves them."""
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, chans, size, size), dtype=torch.uint8, generator=g)

    def labels(n: int) -> torch.Tensor:
        return torch.randint(0, classes, (n,), generator=g)

    val = max(1, train // 8)
    return Splits(
        train_x=images(train).to(device),
        train_y=labels(train).to(device),
        val_x=images(val).to(device),
        val_y=labels(val).to(device),
        test_x=images(val),
        test_y=labels(val),
        ssl_x=None,
        num_classes=classes,
        in_chans=chans,
        image_size=size,
        mean=(0.5,) * chans,
        std=(0.25,) * chans,
    )


def count_syncs(caught: list[warnings.WarningMessage]) -> int:
    """Device syncs among warnings recorded under `set_sync_debug_mode("warn")`."""
    return sum(SYNC_WARNING in str(w.message) for w in caught)


def wait_for_peers(folder: Path, stage: str, rank: int, n: int, timeout: float) -> None:
    """File barrier: mark `rank` at `stage`, then wait until all `n` processes are there.

    Raises:
        RuntimeError: a peer failed (it left a `failed-*` file) or `timeout` seconds passed.
    """
    (folder / f"{stage}-{rank}").touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.glob(f"{stage}-*"))) < n:
        failed = sorted(p.name for p in folder.glob("failed-*"))
        if failed:
            raise RuntimeError(f"stopped at {stage!r}: a peer failed ({', '.join(failed)})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"stopped at {stage!r}: peers missing after {timeout:g} s")
        time.sleep(0.05)


def train_counting_syncs(trainer: Any) -> tuple[list[int], list[int] | None]:
    """Run every epoch of `trainer`'s plan: (steps per epoch, device syncs per epoch or None
    on a CPU, where there is nothing to count)."""
    cuda = trainer.rt.device.type == "cuda"
    steps: list[int] = []
    syncs: list[int] = []
    if cuda:
        torch.cuda.set_sync_debug_mode("warn")
    try:
        while trainer.epoch < len(trainer.phases):
            before = sum(trainer.step_counts.values())
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                trainer.run_epoch()
            steps.append(sum(trainer.step_counts.values()) - before)
            syncs.append(count_syncs(caught))
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    return steps, (syncs if cuda else None)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One packed trial (in its own process): see the module docstring.

    Returns:
        `pid`, `device`, `bf16`, `steps` and `syncs` (per epoch; syncs None on a CPU),
        `peak_gb` (`gpu_mem_peak_gb` as a trial reports it; None on a CPU) and `estimate_gb`
        (trainers/memory.py's peak for this trial, less the CUDA context the allocator does
        not see).
    """
    import trainers.pipeline
    from trainers import TrialConfig
    from trainers.memory import CUDA_CONTEXT_BYTES, GB, phase_peaks
    from trainers.pipeline import Trainer
    from trainers.runtime import resolve_runtime

    folder, rank, n = Path(spec["folder"]), spec["rank"], spec["n"]
    config = TrialConfig.from_dict(spec["config"])
    runtime = resolve_runtime(config)
    if runtime.device.type == "cuda":
        from tune_app.trial import cap_gpu_memory  # what every Ray trial does first

        cap_gpu_memory(spec["share"])
    shape = spec["shape"]
    # This process is one trial: its data is synthetic, of the shape asked for.
    trainers.pipeline.load_splits = lambda c, d: synthetic_splits(d, **shape)
    trainer = Trainer(config, runtime)
    wait_for_peers(folder, "ready", rank, n, spec["timeout"])
    steps, syncs = train_counting_syncs(trainer)
    peaks = phase_peaks(config, trainer.splits, runtime.bf16)
    result = {
        "pid": os.getpid(),
        "device": str(runtime.device),
        "bf16": runtime.bf16,
        "steps": steps,
        "syncs": syncs,
        "peak_gb": peak_gb(runtime.device),
        "estimate_gb": (max(peaks.values()) - CUDA_CONTEXT_BYTES) / GB,
    }
    wait_for_peers(folder, "done", rank, n, spec["timeout"])  # hold the memory till all end
    return result


def peak_gb(device: torch.device) -> float | None:
    """`gpu_mem_peak_gb` as every trial reports it; None on a CPU (and no Ray import there)."""
    if device.type != "cuda":
        return None
    from tune_app.trial import gpu_memory_metrics

    return gpu_memory_metrics(device)["gpu_mem_peak_gb"]


def run_packed(
    config: dict[str, Any], share: float, shape: dict[str, int], timeout: float = 600.0
) -> list[dict[str, Any]]:
    """Start `processes_per_gpu(share)` packed trials of `config` at once; their results by
    rank. A failed process's result is `{"error": ..., "returncode": ...}` instead.

    Args:
        config: the trial's `TrialConfig` fields (as `to_dict` gives them).
        share: each trial's GPU share (`resources.gpu`).
        shape: `synthetic_splits`' sizes (`train`, `size`, `chans`, `classes`).
        timeout: seconds before a waiting or running process gives up.
    """
    n = processes_per_gpu(share)
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="packed-") as tmp:
        folder = Path(tmp)
        procs = []
        for rank in range(n):
            spec = {"config": config, "share": share, "shape": shape, "folder": tmp}
            spec.update(rank=rank, n=n, timeout=timeout)
            (folder / f"spec-{rank}.json").write_text(json.dumps(spec))
            cmd = [sys.executable, "-m", "tests.packed_trials", str(folder / f"spec-{rank}.json")]
            # stderr to a file: a pipe nobody reads yet could fill and stall a waiting peer
            with open(folder / f"stderr-{rank}.txt", "wb") as err:
                procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=err))
        return [collect(p, folder, rank, deadline) for rank, p in enumerate(procs)]


def collect(proc: subprocess.Popen, folder: Path, rank: int, deadline: float) -> dict[str, Any]:
    """Wait for worker `rank` until `deadline`; its result, or why there is none."""
    timed_out = False
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    result = folder / f"result-{rank}.json"
    if proc.returncode == 0 and result.exists():
        return json.loads(result.read_text())
    stderr = (folder / f"stderr-{rank}.txt").read_text(errors="replace")
    tail = "\n".join(stderr.strip().splitlines()[-20:])
    if timed_out:
        tail = f"killed: still running at the harness's deadline\n{tail}"
    return {"error": tail or "no output", "returncode": proc.returncode}


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    folder, rank = Path(spec["folder"]), spec["rank"]
    try:
        result = run_worker(spec)
    except BaseException:
        (folder / f"failed-{rank}").touch()  # peers waiting at a barrier stop at once
        traceback.print_exc()
        return 1
    (folder / f"result-{rank}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
