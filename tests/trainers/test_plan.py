"""Phase plan, alpha schedule, mixing and LR schedule against brute-force references."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from trainers.plan import alpha_at, epoch_phases, lr_factor, mix_images, phase_plan


def brute_force_plan(epochs_ssl: int, epochs_sl: int, rho: float) -> list[tuple[str, int]]:
    """Algorithm 1 step by step in exact arithmetic, rho read as the simple fraction meant."""
    e_mix = 0
    while Fraction(rho).limit_denominator(10**6) * min(epochs_ssl, epochs_sl) >= e_mix + 1:
        e_mix += 1
    return [("ssl", epochs_ssl - e_mix), ("mix", e_mix), ("sl", epochs_sl - e_mix)]


@pytest.mark.parametrize("epochs_ssl", [0, 1, 2, 3, 5, 6, 10, 17, 100])
@pytest.mark.parametrize("epochs_sl", [0, 1, 2, 4, 6, 9, 50])
@pytest.mark.parametrize("rho", [0.0, 0.1, 0.25, 0.3, 1 / 3, 0.5, 0.7, 0.9, 0.99, 1.0])
def test_phase_plan_matches_brute_force(epochs_ssl: int, epochs_sl: int, rho: float) -> None:
    plan = phase_plan(epochs_ssl, epochs_sl, rho)
    assert plan == brute_force_plan(epochs_ssl, epochs_sl, rho)
    # Each MIX epoch replaces one SSL and one SL epoch.
    assert plan[0][1] + plan[1][1] == epochs_ssl and plan[1][1] + plan[2][1] == epochs_sl


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((6, 6, 0.0), [("ssl", 6), ("mix", 0), ("sl", 6)]),  # SSL+SL
        ((0, 6, 0.8), [("ssl", 0), ("mix", 0), ("sl", 6)]),  # SL
        ((6, 6, 1.0), [("ssl", 0), ("mix", 6), ("sl", 0)]),  # all mixed
        ((10, 4, 0.5), [("ssl", 8), ("mix", 2), ("sl", 2)]),
        ((10, 10, 0.3), [("ssl", 7), ("mix", 3), ("sl", 7)]),  # 0.3 * 10 is 2.999... in floats
    ],
)
def test_phase_plan_edge_cases(args: tuple, expected: list) -> None:
    assert phase_plan(*args) == expected


@pytest.mark.parametrize("bad", [(-1, 3, 0.5), (3, 3, -0.1), (3, 3, 1.5)])
def test_phase_plan_rejects_bad_values(bad: tuple) -> None:
    with pytest.raises(ValueError):
        phase_plan(*bad)


def test_epoch_phases_flattens_in_order() -> None:
    assert epoch_phases([("ssl", 2), ("mix", 1), ("sl", 3)]) == ["ssl"] * 2 + ["mix"] + ["sl"] * 3


ALPHAS = [0.05, 0.2, 0.5, 0.51, 0.8, 0.95]


@pytest.mark.parametrize("anneal", ["linear", "cosine"])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("steps", [2, 3, 10, 97])
def test_annealed_alpha_mean_endpoints_monotone(anneal: str, alpha: float, steps: int) -> None:
    values = [alpha_at(alpha, anneal, s, steps) for s in range(steps)]
    assert sum(values) / steps == pytest.approx(alpha, abs=1e-12)
    assert values[0] == pytest.approx(min(1.0, 2 * alpha))
    assert values[-1] == pytest.approx(max(0.0, 2 * alpha - 1))
    assert all(a >= b - 1e-15 for a, b in zip(values, values[1:], strict=False))
    assert all(0.0 <= v <= 1.0 for v in values)


def test_cosine_schedule_matches_closed_form() -> None:
    alpha, steps = 0.3, 11
    for s in range(steps):
        t = s / (steps - 1)
        expected = 0.6 * (1 + math.cos(math.pi * t)) / 2  # from 0.6 down to 0
        assert alpha_at(alpha, "cosine", s, steps) == pytest.approx(expected)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_no_anneal_holds_alpha(alpha: float) -> None:
    assert {alpha_at(alpha, "none", s, 50) for s in range(50)} == {alpha}
    assert alpha_at(alpha, "linear", 0, 1) == alpha  # a one-step phase keeps the mean


def test_alpha_rejects_unknown_anneal_and_bad_step() -> None:
    with pytest.raises(ValueError, match="anneal"):
        alpha_at(0.5, "exp", 0, 10)
    with pytest.raises(ValueError):
        alpha_at(0.5, "linear", 10, 10)


def test_mix_images_formula_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    for lam in [0.0, 0.3, 0.5, 1.0, random.Random(1).random()]:
        mixed = mix_images(a, b, lam)
        ref = torch.stack([lam * a[i] + (1 - lam) * b[i] for i in range(4)])
        torch.testing.assert_close(mixed, ref)
    torch.testing.assert_close(mix_images(a, b, 1.0), a)


@pytest.mark.parametrize(("total", "warmup"), [(100, 10), (7, 0), (50, 49), (1, 0)])
def test_lr_factor_warmup_then_cosine(total: int, warmup: int) -> None:
    f = [lr_factor(s, total, warmup) for s in range(total)]
    for s in range(warmup):
        assert f[s] == pytest.approx((s + 1) / warmup)
    decay = f[warmup:]
    assert decay[0] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))
    assert lr_factor(total, total, warmup) == pytest.approx(0.0, abs=1e-12)
