"""In-memory datasets, splits and batched augmentation (docs/data.md)."""

from .augment import apply_augment, augment, augment_params, channel_constants, normalize
from .loaders import (
    BUILTIN_DATASETS,
    DATASETS,
    PREPARED_DATASETS,
    DataOptions,
    RawDataset,
    load_dataset,
    prepare_dataset,
)
from .rows import Rows
from .splits import Splits, build_splits

__all__ = [
    "BUILTIN_DATASETS",
    "DATASETS",
    "DataOptions",
    "PREPARED_DATASETS",
    "Rows",
    "RawDataset",
    "Splits",
    "apply_augment",
    "augment",
    "augment_params",
    "build_splits",
    "channel_constants",
    "load_dataset",
    "normalize",
    "prepare_dataset",
]
