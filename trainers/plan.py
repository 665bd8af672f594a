"""The pure math of MixTraining (paper Algorithm 1): phase plan, alpha schedule, mixing, LR.

Everything here is a small pure function, tested against brute-force or closed-form references.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: search_spaces uses phase_plan and must not load torch
    from torch import Tensor


def phase_plan(epochs_ssl: int, epochs_sl: int, rho: float) -> list[tuple[str, int]]:
    """The three phases as data: `[("ssl", n), ("mix", e_mix), ("sl", m)]`.

    `e_mix = floor(rho * min(epochs_ssl, epochs_sl))`; each MIX epoch replaces one SSL and one
    SL epoch. SL is `epochs_ssl = 0`; SSL+SL is `rho = 0`. Zero-epoch phases are kept so every
    plan has the same shape.
    """
    if epochs_ssl < 0 or epochs_sl < 0:
        raise ValueError(f"epochs must be >= 0, got epochs_ssl={epochs_ssl}, epochs_sl={epochs_sl}")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    # The small epsilon keeps e.g. rho=0.3, 10 epochs at 3 despite 0.3 * 10 = 2.9999999999999996.
    e_mix = math.floor(rho * min(epochs_ssl, epochs_sl) + 1e-9)
    return [("ssl", epochs_ssl - e_mix), ("mix", e_mix), ("sl", epochs_sl - e_mix)]


def epoch_phases(plan: list[tuple[str, int]]) -> list[str]:
    """One phase name per epoch, in order: `[("ssl", 2), ("sl", 1)] -> ["ssl", "ssl", "sl"]`."""
    return [name for name, epochs in plan for _ in range(epochs)]


def alpha_at(alpha: float, anneal: str, step: int, total_steps: int) -> float:
    """The SSL loss weight at `step` of the `total_steps` steps of the MIX phase.

    `none` holds `alpha`. `linear` and `cosine` ramp from `min(1, 2*alpha)` down to
    `max(0, 2*alpha - 1)`, so their mean over the phase is `alpha`: the ramp is symmetric
    about its midpoint, and sampling at `t = step / (total_steps - 1)` keeps the discrete mean
    exact while hitting both endpoints.
    """
    if anneal == "none" or total_steps <= 1:
        return alpha
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} outside [0, {total_steps})")
    high, low = min(1.0, 2.0 * alpha), max(0.0, 2.0 * alpha - 1.0)
    t = step / (total_steps - 1)
    if anneal == "linear":
        return high + (low - high) * t
    if anneal == "cosine":
        return high + (low - high) * (1.0 - math.cos(math.pi * t)) / 2.0
    raise ValueError(f"anneal must be one of none, linear, cosine; got {anneal!r}")


def mix_images(x_sl: Tensor, x_ssl: Tensor, lam: float) -> Tensor:
    """`lam * x_sl + (1 - lam) * x_ssl`: the SL image mixed with an SSL image; label stays y_sl."""
    return lam * x_sl + (1.0 - lam) * x_ssl


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total_steps` (MAE's schedule, per step)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
