"""TrialConfig: strict construction, defaults, round trips."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.support import ROOT
from trainers.config import ConfigError, TrialConfig


def test_defaults_resolve_paper_learning_rates() -> None:
    assert TrialConfig().lr_ssl == pytest.approx(1.5e-4)
    assert TrialConfig.from_dict({"model": "resnet_micro"}).lr_ssl == pytest.approx(1e-4)
    assert TrialConfig.from_dict({"lr_ssl": 3e-4}).lr_ssl == pytest.approx(3e-4)


def test_round_trip_through_dict() -> None:
    c = TrialConfig.from_dict({"rho": 0.25, "anneal": "cosine", "betas": [0.9, 0.99]})
    assert TrialConfig.from_dict(c.to_dict()) == c
    assert c.betas == (0.9, 0.99)


def test_ints_accepted_for_floats() -> None:
    assert TrialConfig.from_dict({"rho": 1}).rho == 1.0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"rhoo": 0.5}, "rhoo"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"rho": 1.01}, "rho"),
        ({"rho": "half"}, "rho"),
        ({"lam": -0.1}, "lam"),
        ({"anneal": "exp"}, "anneal"),
        ({"pipeline": "ssl"}, "pipeline"),
        ({"model": "vit_huge"}, "model"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"ssl_source": "somewhere"}, "ssl_source"),
        ({"labeled_fraction": 0.0}, "labeled_fraction"),
        ({"labeled_fraction": 1.5}, "labeled_fraction"),
        ({"label_noise": 1.0}, "label_noise"),
        ({"unlabeled_fraction": 0.0}, "unlabeled_fraction"),
        ({"unlabeled_fraction": 1.5}, "unlabeled_fraction"),
        ({"epochs_sl": 0}, "epochs_sl"),
        ({"epochs_ssl": -1}, "epochs_ssl"),
        ({"epochs_ssl": 2.5}, "epochs_ssl"),
        ({"batch_size": True}, "batch_size"),
        ({"precision": "fp16"}, "precision"),
        ({"device": "tpu"}, "device"),
        ({"lr_sl": 0}, "lr_sl"),
        ({"betas": [0.9]}, "betas"),
        ({"warmup_sl": 1.0}, "warmup_sl"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"seed": None}, "seed"),
    ],
)
def test_bad_values_name_the_field(values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TrialConfig.from_dict(values)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        TrialConfig().rho = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pipeline", "rho", "epochs_ssl"), [("mixtraining", 0.5, 6), ("ssl_sl", 0.0, 6), ("sl", 0.0, 0)]
)
def test_baselines_are_the_same_code_path(pipeline: str, rho: float, epochs_ssl: int) -> None:
    c = TrialConfig.from_dict({"pipeline": pipeline, "rho": 0.5, "epochs_ssl": 6})
    assert (c.effective_rho, c.effective_epochs_ssl) == (rho, epochs_ssl)


def test_docs_config_lists_every_field() -> None:
    """docs/config.md is the settings reference: each field has a table row of its own."""
    doc = (ROOT / "docs" / "config.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    missing = [f.name for f in dataclasses.fields(TrialConfig) if f.name not in named]
    assert not missing, f"add to docs/config.md: {missing}"
