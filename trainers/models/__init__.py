"""Models with a shared backbone, an SSL decoder and a classifier: `create_model(name, ...)`."""

from trainers.models.base import MixModel
from trainers.models.registry import MODELS, create_model

__all__ = ["MODELS", "MixModel", "create_model"]
