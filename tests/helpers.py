"""Shared test data."""

from __future__ import annotations

SPACE = {
    "name": "tiny",
    "description": "digits, vit_micro, one epoch per phase",
    "trainer": {
        "model": "vit_micro",
        "dataset": "digits",
        "labeled_fraction": 0.3,
        "ssl_source": "unlabeled",
        "epochs_ssl": 2,
        "epochs_sl": 2,
        "batch_size": 64,
    },
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
