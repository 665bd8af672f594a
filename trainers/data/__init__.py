"""In-memory datasets, splits and batched augmentation (see ARCHITECTURE.md "Data")."""

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
