"""Pure-PyTorch MixTraining: data, models and the three-phase pipeline.

Never imports ray, optuna or wandb; reports through the callback it is given.

`TrialConfig` and `ConfigError` are torch-free and imported at once. The names that need torch
and timm (`run`, `plan_for`, `SetupError`, `NonFiniteLossError`) load on first use, so
`import trainers.config` (and `search_spaces`, which builds on it) never starts torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainers.config import ConfigError, TrialConfig

if TYPE_CHECKING:  # type checkers see the real names; at run time __getattr__ loads them
    from trainers.pipeline import SetupError, plan_for, run
    from trainers.steps import NonFiniteLossError

# Public name -> the module that defines it (imported on first access).
_LAZY = {
    "SetupError": "trainers.pipeline",
    "plan_for": "trainers.pipeline",
    "run": "trainers.pipeline",
    "NonFiniteLossError": "trainers.steps",
}

__all__ = ["ConfigError", "NonFiniteLossError", "SetupError", "TrialConfig", "plan_for", "run"]


def __getattr__(name: str) -> Any:
    """Import a torch-backed public name on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value
