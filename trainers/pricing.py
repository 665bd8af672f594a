"""What a run of a config takes, and what it costs: its phase plan, the kinds of training step
it runs, and the seconds a calibrated step-cost table prices them at (torch-free).

Step kinds (`step_kind`): `ssl`, `sl`, `mix_full`, `mix_masked`, and `sl_<accel>` for the
mixTrain SL variants (`sl_mixup`, `sl_cutmix`, `sl_skip`). The table itself is measured by
`trainers.calibrate`.
"""

from __future__ import annotations

from trainers.config import TrialConfig
from trainers.plan import phase_plan


def plan_for(config: TrialConfig) -> list[tuple[str, int]]:
    """The phase plan (`phase_plan`) of a run of `config`."""
    return phase_plan(config.effective_epochs_ssl, config.epochs_sl, config.effective_rho)


def step_kind(phase: str, mix_pass: str, batch_mode: str | None) -> str:
    """The cost-table key of one training step: its phase, MIX pass or mixTrain SL variant."""
    if phase == "mix":
        return f"mix_{mix_pass}"
    if phase == "sl" and batch_mode not in (None, "none"):
        return f"sl_{batch_mode}"
    return phase


def config_step_kinds(config: TrialConfig) -> set[str]:
    """The step kinds a run of `config` takes (its phase plan, MIX pass and SL variant)."""
    phases = {p for p, e in plan_for(config) if e > 0}
    accel = config.sl_accel if config.sl_accel != "none" else None
    return {step_kind(p, config.mix_pass, accel) for p in phases}


def calibrated_seconds(counts: dict[str, int], costs: dict[str, float]) -> float:
    """Steps taken of each kind times the calibrated seconds of that kind, summed.

    Raises:
        KeyError: a kind with steps has no calibrated cost (named in the message).
    """
    missing = sorted(k for k, n in counts.items() if n and k not in costs)
    if missing:
        raise KeyError(f"no calibrated step cost for step kind(s) {missing}; have {sorted(costs)}")
    return float(sum(n * costs[k] for k, n in counts.items() if n))
