"""Shared test data."""

from __future__ import annotations

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
