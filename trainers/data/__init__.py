"""In-memory datasets, splits and batched augmentation (the README's "Data" section)."""

from .augment import augment, normalize
from .loaders import DATASETS, RawDataset, load_dataset
from .splits import Splits, build_splits

__all__ = [
    "DATASETS",
    "RawDataset",
    "Splits",
    "augment",
    "build_splits",
    "load_dataset",
    "normalize",
]
