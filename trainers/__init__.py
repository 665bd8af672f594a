"""Pure-PyTorch MixTraining: data, models and the three-phase pipeline.

Never imports ray, optuna or wandb; reports through the callback it is given.

`TrialConfig`, `plan_for` and the errors are torch-free and imported at once. `run` needs torch
and timm and loads on first use, so `import trainers.config` (and `search_spaces`, which builds
on it) never starts torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainers.config import ConfigError, TrialConfig
from trainers.errors import NonFiniteLossError, SetupError
from trainers.pricing import plan_for

if TYPE_CHECKING:  # type checkers see the real name; at run time __getattr__ loads it
    from trainers.pipeline import run

# Public name -> the module that defines it (imported on first access).
_LAZY = {"run": "trainers.pipeline"}

__all__ = ["ConfigError", "NonFiniteLossError", "SetupError", "TrialConfig", "plan_for", "run"]


def __getattr__(name: str) -> Any:
    """Import a torch-backed public name on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value
