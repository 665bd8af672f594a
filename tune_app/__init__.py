"""tune-app: multi-objective search over the MixTraining pipeline (Ray Tune + Optuna + W&B)."""

__version__ = "0.1.0"
