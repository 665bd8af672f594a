"""Shared test helpers: the one module test modules import helpers from (`from tests.support
import ...`). conftest.py holds the fixtures; what a test module imports lives here.

- The tiny run and space every test builds on (`TINY_RUN`, `SPACE`, `PINNED`), a search's
  driver process (`start_driver`, `wait_while_alive`) and W&B's test key (`FAKE_WANDB_KEY`).
- Writers of tiny datasets in the real on-disk formats (IDX gzip, CIFAR pickles, JPEG and PNG
  folders). Images made by `indexed_images` carry their own index in two pixels, so tests can
  tell which original training image ended up in which split.
- Synthetic experiment folders for the analysis (`ANALYSIS_SPACE`, `trial`, `FINISHED`,
  `write_experiment`, and Ray's own per-trial files: `ray_trial`, `write_ray_experiment`).
- `FakeCuda`: what `torch.cuda` reports on a GPU host, for device tests on a CPU machine.
"""

from __future__ import annotations

import gzip
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import yaml

from trainers import TrialConfig, plan_for

if TYPE_CHECKING:
    import pytest

# The repository root, and the data files some tests read (tests/fixtures/).
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The per-epoch metric names docs/architecture.md lists (the tests' own copy, not the code's).
PINNED = {
    "epoch",
    "phase",
    "loss_ssl",
    "loss_sl",
    "val_accuracy",
    "train_latency_s",
    "train_gflops",
    "images_per_s",
}

# A run small enough for unit tests: digits, vit_micro, 2 + 2 epochs.
TINY_RUN = {
    "model": "vit_micro",
    "dataset": "digits",
    "labeled_fraction": 0.3,
    "ssl_source": "unlabeled",
    "epochs_ssl": 2,
    "epochs_sl": 2,
    "rho": 0.5,
    "batch_size": 64,
    "num_threads": 1,
}


SPACE = {
    "name": "tiny",
    "description": "digits, vit_micro, two epochs per phase",
    # the tiny run, minus what a search sets itself (rho is searched, threads come from Ray)
    "trainer": {k: v for k, v in TINY_RUN.items() if k not in ("rho", "num_threads")},
    "parameters": {
        "alpha": {"distribution": "uniform", "min": 0.1, "max": 0.9},
        "rho": {"distribution": "uniform", "min": 0.5, "max": 1.0},
        "lam": {"distribution": "uniform", "min": 0.3, "max": 1.0},
        "anneal": {"values": ["none", "linear", "cosine"]},
    },
    "objectives": [
        {"metric": "val_accuracy", "goal": "maximize"},
        {"metric": "train_latency_s", "goal": "minimize"},
    ],
    "search": {"sampler": "tpe", "num_samples": 3, "max_concurrent": 2, "seed": 0},
    "baselines": {"pipelines": ["sl", "ssl_sl"], "seeds": [0]},
    "resources": {"cpu": 1, "gpu": 0},
}


def digits_folder(tmp_path: Path) -> dict[str, str]:
    """scikit-learn's digits written as PNG class folders, plus 300 of them as an unlabelled
    pool: the trainer settings of a search on a user's own folder."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    write_image_folder(tmp_path / "digits", x, d.target, [f"digit{i}" for i in range(10)])
    write_image_folder(tmp_path / "pool", x[:300], np.zeros(300, int), ["any"], nested=True)
    return {
        "dataset": "folder",
        "data_dir": str(tmp_path / "digits"),
        "unlabeled_dir": str(tmp_path / "pool"),
        "ssl_source": "all",
    }


def start_driver(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`tune-app ARGS` in a process group of its own, so a test can signal the driver and the
    Ray it starts together (`os.killpg`), as Ctrl-C in a terminal or a kill of the job does."""
    return subprocess.Popen(
        [sys.executable, "-m", "tune_app.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_while_alive(driver: subprocess.Popen, ready: Callable[[], bool], seconds: float) -> None:
    """Poll `ready()` until it holds or `seconds` pass; the driver must live all the while (a
    test about an interrupted driver means nothing if it had already ended)."""
    deadline = time.time() + seconds
    while time.time() < deadline and not ready():
        assert driver.poll() is None, "the driver ended before the test could stop it"
        time.sleep(0.5)


# The key a test search is "logged in" with: W&B is unreachable from the tests, so the default
# mode must find it, say so, and log offline, and never write the key anywhere.
FAKE_WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"


def stop_ray() -> None:
    """Stop this process's Ray, if one runs: for a test that needs none, or a cluster of its own."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


# ---------------------------------------------------------------- datasets in real formats

IDX_IMAGES, IDX_LABELS = 2051, 2049


def indexed_images(labels: np.ndarray, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Random uint8 images [N, C, H, W] whose first two pixels encode the image index."""
    n = len(labels)
    x = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    flat = x.reshape(n, -1)
    flat[:, 0], flat[:, 1] = np.arange(n) // 256, np.arange(n) % 256
    return x


def decode_index(x: object) -> np.ndarray:
    """Inverse of `indexed_images`: the index stored in each image of x [N, C, H, W] (any array)."""
    flat = np.asarray(x).reshape(len(x), -1).astype(np.int64)
    return flat[:, 0] * 256 + flat[:, 1]


def write_idx(path: Path, arr: np.ndarray, magic: int | None = None, cut: int = 0) -> Path:
    """Write arr (uint8 [N] or [N, H, W]) as a gzipped IDX file.

    `magic` overrides the header's magic number; `cut` drops that many bytes from the end of
    the payload (a truncated file whose header still claims the full size).
    """
    if magic is None:
        magic = IDX_IMAGES if arr.ndim == 3 else IDX_LABELS
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(data[: len(data) - cut])
    return path


def write_fashion_mnist(
    root: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> Path:
    """Write the four Fashion-MNIST IDX .gz files; x arrays are uint8 [N, 1, 28, 28]."""
    root.mkdir(parents=True, exist_ok=True)
    for stem, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", x[:, 0])
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return root


def random_fashion_mnist(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    """Write random Fashion-MNIST files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 1, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train),
        "test_x": rng.integers(0, 256, (n_test, 1, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test),
    }
    write_fashion_mnist(root, **arrays)
    return arrays


def write_cifar(
    root: Path,
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
) -> Path:
    """Write CIFAR-10/100 python pickles under root/<standard folder>; x uint8 [N, 3, 32, 32]."""
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    key = b"labels" if name == "cifar10" else b"fine_labels"
    if name == "cifar10":  # five training batches; unequal sizes are fine for the format
        parts = np.array_split(np.arange(len(train_x)), 5)
        files = {f"data_batch_{i + 1}": part for i, part in enumerate(parts)}
    else:
        files = {"train": np.arange(len(train_x))}
    batches = {f: (train_x[idx], train_y[idx]) for f, idx in files.items()}
    batches["test_batch" if name == "cifar10" else "test"] = (test_x, test_y)
    for fname, (x, y) in batches.items():
        batch = {b"data": x.reshape(len(x), 3072), key: [int(v) for v in y], b"batch_label": b"t"}
        with open(folder / fname, "wb") as f:
            pickle.dump(batch, f)
    return folder


def write_tinyimagenet(
    root: Path, n_classes: int = 3, n_train: int = 4, n_val: int = 6, seed: int = 0
) -> dict:
    """Write a tiny `tiny-imagenet-200` folder of 64x64 JPEGs (each a distinct flat colour).

    Returns the written JPEG paths and labels per split, labels indexing the sorted wnids.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / "tiny-imagenet-200"
    wnids = [f"n{int(v):08d}" for v in rng.choice(10**8, n_classes, replace=False)]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")  # file order need not be sorted
    colours = rng.choice(256**3, n_classes * n_train + n_val, replace=False)
    rgb = np.stack([colours // 65536, colours // 256 % 256, colours % 256], 1).astype(np.uint8)

    def save(path: Path, i: int) -> Path:
        Image.fromarray(np.full((64, 64, 3), rgb[i], np.uint8)).save(path, quality=95)
        return path

    out = {"train": [], "val": []}
    for c, w in enumerate(sorted(wnids)):
        (base / "train" / w / "images").mkdir(parents=True)
        for j in range(n_train):
            path = save(base / "train" / w / "images" / f"{w}_{j}.JPEG", c * n_train + j)
            out["train"].append((path, c))
    lines = []
    for j in range(n_val):
        c = int(rng.integers(n_classes))
        path = save(base / "val" / "images" / f"val_{j}.JPEG", n_classes * n_train + j)
        out["val"].append((path, c))
        lines.append(f"val_{j}.JPEG\t{sorted(wnids)[c]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return out


def write_image_folder(
    root: Path,
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    suffix: str = ".png",
    nested: bool = False,
) -> list[Path]:
    """Write uint8 images x [N, C, H, W] as `root/<class>/[sub/]<i><suffix>` with Pillow.

    `nested` puts every other image one folder deeper (images at any depth below their class).
    Returns the paths written, in image order.
    """
    from PIL import Image

    paths = []
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / classes[int(label)] / ("deeper" if nested and i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        path = folder / f"{i:05d}{suffix}"
        Image.fromarray(np.ascontiguousarray(arr)).save(path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- synthetic experiment folders

KNOBS = ("alpha", "rho", "lam", "anneal")
# The shared tiny space, renamed, with rho from 0 and two baseline seeds (a known front).
ANALYSIS_SPACE = {
    **SPACE,
    "name": "synthetic",
    "description": "hand-made results with a known front",
    "parameters": {
        **SPACE["parameters"],
        "rho": {"distribution": "uniform", "min": 0.0, "max": 1.0},
    },
    "search": {"sampler": "tpe", "num_samples": 8, "max_concurrent": 2, "seed": 0},
    "baselines": {"pipelines": ["sl", "ssl_sl"], "seeds": [0, 1]},
}


def config_of(pipeline: str = "mixtraining", seed: int = 0, **knobs: object) -> TrialConfig:
    """The TrialConfig a search would run: the space's trainer settings plus the suggestion."""
    return TrialConfig.from_dict(
        {**ANALYSIS_SPACE["trainer"], **knobs, "pipeline": pipeline, "seed": seed, "num_threads": 1}
    )


def trial(tid: str, acc: float | None, lat: float | None, pipeline: str = "mixtraining",
          seed: int = 0, status: str = "TERMINATED", done: int | None = None,
          error: str | None = None, **knobs: object) -> dict:  # fmt: skip
    """One trials.parquet row as docs/internal-interfaces.md documents it."""
    if pipeline == "mixtraining":
        knobs = {"alpha": 0.5, "rho": 0.5, "lam": 0.7, "anneal": "none", **knobs}
    config = config_of(pipeline, seed, **knobs)
    settings = config.to_dict()
    row = {"trial_id": tid, "pipeline": pipeline, "seed": seed, "status": status}
    for k in KNOBS:
        value = settings.pop(k)
        row[k] = value if pipeline == "mixtraining" else None
    settings.pop("pipeline"), settings.pop("seed")
    planned = sum(epochs for _, epochs in plan_for(config))
    done = planned if done is None else done
    row.update(settings)
    row.update({"epochs_done": done, "epochs_planned": planned})
    row.update({"val_accuracy": acc, "test_accuracy": None if acc is None else acc - 0.01})
    row.update({"train_latency_s": lat, "train_gflops": 1.0, "images_per_s": 100.0})
    row.update({"loss_ssl": None, "loss_sl": 0.5, "node_id": "n0", "gpu_ids": ""})
    row["complete"] = status == "TERMINATED" and done == planned and not error
    row["error"] = error
    return row


# (val_accuracy, train_latency_s): front m6, m1, m2 = m5 (duplicates), m3; m4 is dominated.
# SSL+SL mean (0.83, 20.0): m2, m5 and m3 (equal latency, better accuracy) dominate it.
FINISHED = [
    trial("m1", 0.80, 10.0, alpha=0.2, rho=0.3, anneal="linear"),
    trial("m2", 0.85, 14.0, alpha=0.4, rho=0.6, anneal="cosine"),
    trial("m3", 0.90, 20.0, alpha=0.6, rho=0.9),
    trial("m4", 0.78, 16.0, alpha=0.8),
    trial("m5", 0.85, 14.0, alpha=0.3, lam=0.9),
    trial("m6", 0.70, 8.0, alpha=0.7, rho=0.1),
    trial("e1", None, None, status="ERROR", done=1, error="Traceback\nRuntimeError: loss is nan"),
    trial("u1", 0.95, 3.0, status="RUNNING", done=2),  # would dominate everything if counted
    trial("s0", 0.82, 21.0, "ssl_sl", 0),
    trial("s1", 0.84, 19.0, "ssl_sl", 1),
    trial("b0", 0.72, 9.0, "sl", 0),
    trial("b1", 0.74, 9.5, "sl", 1),
]
FRONT_IDS = ["m6", "m1", "m2", "m5", "m3"]


def write_experiment(path: Path, rows: list[dict], space: dict = ANALYSIS_SPACE) -> Path:
    path.mkdir(parents=True)
    (path / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    if rows:
        pd.DataFrame(rows).to_parquet(path / "trials.parquet", index=False)
    return path


def ray_trial(root: Path, tid: str, params: dict, epochs: list[dict], planned: int,
              error: str | None = None, torn: bool = False) -> None:  # fmt: skip
    """A Ray trial folder: params.json, result.json (one line per epoch), maybe error.txt."""
    folder = root / tid
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(params))
    tags = {"pipeline": params.get("pipeline", "mixtraining"), "seed": params.get("seed", 0)}
    lines = [
        json.dumps({**e, "epoch": i + 1, **tags, "epochs_planned": planned, "trial_id": tid})
        for i, e in enumerate(epochs)
    ]
    if lines or torn:
        text = "\n".join(lines) + "\n" + ('{"epoch": 9, "val_acc' if torn else "")
        (folder / "result.json").write_text(text)
    if error:
        (folder / "error.txt").write_text(error)


def epochs_of(n: int, acc: float, lat: float) -> list[dict]:
    return [{"val_accuracy": acc, "train_latency_s": lat * (i + 1) / n} for i in range(n)]


def write_ray_experiment(path: Path, with_state: bool) -> Path:
    path.mkdir(parents=True)
    (path / "space.yaml").write_text(yaml.safe_dump(ANALYSIS_SPACE, sort_keys=False))
    knobs = {"alpha": 0.3, "rho": 0.4, "lam": 0.8, "anneal": "cosine", "pipeline": "mixtraining"}
    ray_trial(path, "r1", knobs, epochs_of(4, 0.8, 10.0), 4)
    ray_trial(path, "r2", {**knobs, "alpha": 0.4}, epochs_of(2, 0.9, 1.0), 4, torn=True)
    ray_trial(path, "r3", {**knobs, "alpha": 0.5}, epochs_of(1, 0.5, 1.0), 4, error="Boom")
    ray_trial(path, "r4", {"pipeline": "sl", "seed": 0}, epochs_of(2, 0.7, 9.0), 2)
    ray_trial(path, "r5", {"pipeline": "ssl_sl", "seed": 0}, epochs_of(4, 0.75, 20.0), 4)
    ray_trial(path, "r6", {**knobs, "alpha": 0.6}, [], 4)  # suggested, never started
    if with_state:
        status = {"r1": "RUNNING", "r2": "RUNNING", "r3": "ERROR", "r4": "TERMINATED",
                  "r5": "TERMINATED", "r6": "PENDING"}  # fmt: skip
        data = [[json.dumps({"trial_id": t, "status": s}), "{}"] for t, s in status.items()]
        (path / "experiment_state-2026-01-01_00-00-00.json").write_text(
            json.dumps({"trial_data": data})
        )
    return path


# ---------------------------------------------------------------- a GPU host, mocked


class FakeCuda:
    """What torch.cuda reports on a host with `count` GPUs; RNG states kept per index."""

    def __init__(self, count: int, current: int = 0, bf16_native: bool = True) -> None:
        self.count, self.current, self.bf16_native = count, current, bf16_native
        self.states = {i: torch.tensor([i], dtype=torch.uint8) for i in range(count)}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(cuda, "set_device", self.set_device)
        monkeypatch.setattr(cuda, "get_rng_state", self.get_rng_state)
        monkeypatch.setattr(cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(cuda, "get_rng_state_all", lambda: list(self.states.values()))
        monkeypatch.setattr(cuda, "set_rng_state_all", self.set_rng_state_all)
        monkeypatch.setattr(cuda, "is_bf16_supported", self.is_bf16_supported)
        return self

    def _index(self, device: torch.device | int | str) -> int:
        if isinstance(device, int):
            index = device
        else:
            index = torch.device(device).index
            index = self.current if index is None else index
        if index >= self.count:  # what torch raises for an unseen device
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        return index

    def set_device(self, device: int) -> None:
        self.current = self._index(device)

    def get_rng_state(self, device: torch.device | int = "cuda") -> torch.Tensor:
        return self.states[self._index(device)].clone()

    def set_rng_state(self, state: torch.Tensor, device: torch.device | int = "cuda") -> None:
        self.states[self._index(device)] = state.clone()

    def set_rng_state_all(self, states: list[torch.Tensor]) -> None:
        for i, state in enumerate(states):
            self.set_rng_state(state, i)

    def is_bf16_supported(self, including_emulation: bool = True) -> bool:
        return self.bf16_native or including_emulation


def collect(config: TrialConfig, checkpoint: dict | None = None, stop_after: int | None = None):
    """Run `config` in-process: its reported rows, checkpoint states and final metrics; with
    `stop_after`, the run is interrupted right after that epoch's checkpoint (final None)."""
    from trainers import run

    rows: list[dict] = []
    states: list[dict] = []

    def report(metrics: dict, state: dict) -> None:
        rows.append(metrics)
        states.append(state)
        if stop_after is not None and metrics["epoch"] == stop_after:
            raise KeyboardInterrupt  # the run is interrupted right after this checkpoint

    try:
        final = run(config, report, checkpoint)
    except KeyboardInterrupt:
        final = None
    return rows, states, final
