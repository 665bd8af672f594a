"""Models with a shared backbone, an SSL decoder and a classifier: `create_model(name, ...)`."""

from trainers.models.base import MixModel
from trainers.models.registry import (
    MODELS,
    NATIVE_SHAPES,
    create_model,
    model_family,
    model_for,
    model_summary,
)

__all__ = [
    "MODELS",
    "NATIVE_SHAPES",
    "MixModel",
    "create_model",
    "model_family",
    "model_for",
    "model_summary",
]
