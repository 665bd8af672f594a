"""Pure-PyTorch MixTraining: data, models and the three-phase pipeline.

Never imports ray, optuna or wandb; reports through the callback it is given.
"""

from trainers.config import ConfigError, TrialConfig
from trainers.pipeline import SetupError, plan_for, run
from trainers.steps import NonFiniteLossError

__all__ = ["ConfigError", "NonFiniteLossError", "SetupError", "TrialConfig", "plan_for", "run"]
