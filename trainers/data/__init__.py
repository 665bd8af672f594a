"""In-memory datasets, splits and batched augmentation (the README's "Data" section)."""

from .augment import apply_augment, augment, augment_params, channel_constants, normalize
from .loaders import DATASETS, RawDataset, load_dataset
from .splits import Splits, build_splits

__all__ = [
    "DATASETS",
    "RawDataset",
    "Splits",
    "apply_augment",
    "augment",
    "augment_params",
    "build_splits",
    "channel_constants",
    "load_dataset",
    "normalize",
]
