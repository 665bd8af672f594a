"""Shared test data."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
    import numpy as np
    from fixtures_data import write_image_folder
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
