"""What a trial's suggestion means: the one rule from (fixed settings, suggestion) to the
trial's `TrialConfig` and its role.

A suggestion is the config Ray hands a trial: the searched knobs Optuna drew, or a baseline's
`pipeline` and `seed`, or a confirmation run's knobs with `seed` and `role: confirm`. `role` is
the experiment's bookkeeping, never a run setting; without one, a MixTraining trial is a
`search` trial and any other pipeline a `baseline`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from search_spaces import SearchSpace
from trainers import TrialConfig

ROLE = "role"


def role_of(suggested: Mapping[str, Any]) -> str:
    """search | confirm | baseline."""
    role = suggested.get(ROLE)
    if role:
        return str(role)
    return "search" if suggested.get("pipeline", "mixtraining") == "mixtraining" else "baseline"


def suggested_config(
    fixed: Mapping[str, Any], suggested: Mapping[str, Any]
) -> tuple[TrialConfig, str]:
    """The trial's settings (the fixed ones, overridden by the suggestion) and its role.

    Raises:
        trainers.ConfigError: a value is illegal (named in the message).
    """
    settings = {k: v for k, v in suggested.items() if k != ROLE}
    return TrialConfig.from_dict({**fixed, **settings}), role_of(suggested)


def space_settings(space: SearchSpace) -> dict[str, Any]:
    """Every TrialConfig field as the space sets it (a MixTraining trial at the space's seed)."""
    return space.trial_config({}, "mixtraining", None).to_dict()


def fixed_settings(space: SearchSpace) -> dict[str, Any]:
    """Every TrialConfig field a trial starts from: the space's, and what the driver adds for
    the slot the trial runs in; the searcher's suggestion overrides some."""
    fixed = space_settings(space)
    if "num_threads" not in space.trainer:  # one torch thread per CPU the trial was given
        fixed["num_threads"] = max(1, int(space.cpu))
    if space.gpu == 0 and "device" not in space.trainer:
        # Ray 2.60 no longer hides GPUs from a trial given none: without this, "CPU" trials
        # would all land on cuda:0 unscheduled.
        fixed["device"] = "cpu"
    return fixed
