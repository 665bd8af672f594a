"""Raw dataset loaders: files on disk -> uint8 image tensors [N, C, H, W] and int64 labels.

Nothing here downloads: every loader reads the dataset's standard on-disk format and raises a
`ValueError` saying where it looked and how to get the files when they are missing.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.metadata
import os
import pickle
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainers.files import write_atomic

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tinyimagenet", "digits", "folder")
# Built-in datasets that can feed another's SSL (`ssl_source: <name>`): a folder cannot.
BUILTIN_DATASETS = DATASETS[:-1]
DEFAULT_DATA_CACHE = "~/.cache/tune-app/data"
CACHE_ENV = "TUNE_APP_DATA_CACHE"  # overrides the default (tests point it at a temp folder)


def default_cache() -> str:
    return os.environ.get(CACHE_ENV) or DEFAULT_DATA_CACHE


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_IDX_MAGIC = {"images": 2051, "labels": 2049}  # 0x0803: ubyte, 3 dims; 0x0801: ubyte, 1 dim
_CIFAR = {  # name -> (folder, train files, test file, label key, classes, where to get it)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        b"labels",
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        "test",
        b"fine_labels",
        100,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ),
}
_TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


@dataclass(frozen=True)
class RawDataset:
    """A dataset's own train/test split. The tensors are shared by a cache: treat as read-only."""

    train_x: Tensor  # uint8 [N, C, H, W]
    train_y: Tensor  # int64 [N]
    test_x: Tensor  # uint8 [Nt, C, H, W]
    test_y: Tensor  # int64 [Nt]
    num_classes: int
    # a folder's own val/ split (used as given), its unlabelled images, and its class names
    val_x: Tensor | None = None
    val_y: Tensor | None = None
    unlabeled_x: Tensor | None = None
    classes: tuple[str, ...] = ()
    mapped: bool = False  # the image tensors are memory maps of a prepared dataset
    note: str = ""  # what the preparation decided (sizes, held-out test), for the run's output


@dataclass(frozen=True)
class DataOptions:
    """Settings that change what `load_dataset` returns beyond the dataset's name."""

    image_size: int | None = None  # None: the dataset's own (a folder's common) size
    unlabeled_dir: str | None = None  # folder only
    test_fraction: float = 0.1  # folder without test/: the held-out share
    # prepared folders and tinyimagenet, digits' split; None: default_cache()
    cache_dir: str | None = None


def load_dataset(
    name: str, data_dir: str | Path | None = None, options: DataOptions = DataOptions()
) -> RawDataset:
    """Load a dataset's train and test split into memory.

    Args:
        name: one of `DATASETS`.
        data_dir: folder holding the files (docs/data.md); `None` uses the
            default location where there is one (Fashion-MNIST's Debian package, scikit-learn's
            bundled digits).
        options: image size, a folder's unlabelled images and held-out test share, and where
            prepared datasets are cached (docs/data.md).

    Returns:
        The raw dataset, cached per `(name, data_dir)` because trials reload it repeatedly.

    Raises:
        ValueError: unknown name, missing files (naming the path and how to get them) or
            corrupt files (naming the file).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")
    key = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    if name != "folder" and options.unlabeled_dir is not None:
        raise ValueError(f"unlabeled_dir is for dataset 'folder', not {name!r}")
    return _load_cached(name, key, options)


@functools.lru_cache(maxsize=4)  # small: one decoded cifar100 is ~180 MB
def _load_cached(name: str, data_dir: str | None, options: DataOptions) -> RawDataset:
    if name in PREPARED_DATASETS:
        return _load_prepared(name, data_dir, options)
    raw = _load_builtin(name, data_dir, options.cache_dir or default_cache())
    if options.image_size is None or options.image_size == raw.train_x.shape[-1]:
        return raw
    from .images import convert_images

    chans, size = raw.train_x.shape[1], options.image_size
    return dataclasses.replace(
        raw,
        train_x=convert_images(raw.train_x, chans, size),
        test_x=convert_images(raw.test_x, chans, size),
        note=f"resized from {raw.train_x.shape[-1]} to {size} px",
    )


PREPARED_DATASETS = ("folder", "tinyimagenet")  # decoded once into a memory-mapped cache


def prepare_dataset(
    name: str, data_dir: str | Path | None, options: DataOptions, quiet: bool = True
) -> Any:
    """The prepared dataset (`folder.Prepared`) of a folder or tinyimagenet, built if missing
    (with a progress bar unless `quiet`); None for datasets held in memory as read."""
    from .folder import PrepareSettings, prepare

    if name not in PREPARED_DATASETS:
        return None
    cache = options.cache_dir or default_cache()
    if name == "folder":
        if data_dir is None:
            raise ValueError("dataset 'folder' needs data_dir (a folder of class folders)")
        settings = PrepareSettings(options.image_size, options.test_fraction)
        return prepare(
            data_dir, cache, unlabeled_dir=options.unlabeled_dir, settings=settings, quiet=quiet
        )
    scan = _tinyimagenet_scan(None if data_dir is None else str(data_dir))
    settings = PrepareSettings(options.image_size)
    return prepare(scan.root, cache, settings=settings, scan=scan, quiet=quiet)


def _load_prepared(name: str, data_dir: str | None, options: DataOptions) -> RawDataset:
    p = prepare_dataset(name, data_dir, options)
    a = {k: torch.from_numpy(v) for k, v in p.arrays.items()}
    m = p.manifest
    held = (
        f"; test held out: {m['settings']['test_fraction']:.0%} per class, seed 0"
        if m["test_held_out"]
        else ""
    )
    return RawDataset(
        a["train_x"],
        a["train_y"],
        a["test_x"],
        a["test_y"],
        num_classes=len(m["classes"]),
        val_x=a.get("val_x"),
        val_y=a.get("val_y"),
        unlabeled_x=a.get("unlabeled_x"),
        classes=tuple(m["classes"]),
        mapped=True,
        note=f"prepared {p.path} ({m['images']} images, {m['channels']}x{m['image_size']}px{held})",
    )


def _load_builtin(name: str, data_dir: str | None, cache_dir: str) -> RawDataset:
    if name == "fashion_mnist":
        return _load_fashion_mnist(Path(data_dir or FASHION_MNIST_DIR))
    if name in _CIFAR:
        return _load_cifar(name, data_dir)
    return _load_digits(Path(cache_dir).expanduser())  # the default starts with ~


def _raw(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
) -> RawDataset:
    def x(a: np.ndarray) -> Tensor:
        # Copies only when needed (IDX arrays view a read-only buffer).
        return torch.from_numpy(np.require(a, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"]))

    def y(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64))

    return RawDataset(x(train_x), y(train_y), x(test_x), y(test_y), num_classes)


def _need_dir(name: str, data_dir: str | None, how: str) -> Path:
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs data_dir (no default location); {how}")
    return Path(data_dir)


# ---------------------------------------------------------------- Fashion-MNIST (IDX, gzip)


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one gzipped IDX file. kind: "images" -> uint8 [N, H, W]; "labels" -> uint8 [N]."""
    try:
        with gzip.open(path, "rb") as f:
            buf = f.read()
    except (OSError, EOFError, zlib.error) as e:  # bad header, truncated or corrupt stream
        raise ValueError(f"corrupt IDX file {path}: {e}") from e
    ndim = 3 if kind == "images" else 1
    if len(buf) < 4 + 4 * ndim:
        raise ValueError(f"corrupt IDX file {path}: {len(buf)} bytes is shorter than the header")
    magic = int.from_bytes(buf[:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise ValueError(f"corrupt IDX file {path}: magic {magic}, expected {_IDX_MAGIC[kind]}")
    dims = [int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    payload = memoryview(buf)[4 + 4 * ndim :]
    if len(payload) != int(np.prod(dims)):
        raise ValueError(
            f"corrupt IDX file {path}: header says {dims} = {int(np.prod(dims))} bytes of data, "
            f"found {len(payload)}"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _load_fashion_mnist(root: Path) -> RawDataset:
    splits = {}
    for split, stem in (("train", "train"), ("test", "t10k")):
        paths = [root / f"{stem}-images-idx3-ubyte.gz", root / f"{stem}-labels-idx1-ubyte.gz"]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise ValueError(
                f"dataset 'fashion_mnist': missing {', '.join(missing)} in {root}; install it "
                f"with `apt-get install dataset-fashion-mnist` (files go to {FASHION_MNIST_DIR}) "
                "or pass data_dir pointing at a folder with the four IDX .gz files"
            )
        x, y = _read_idx(paths[0], "images"), _read_idx(paths[1], "labels")
        if len(x) != len(y) or (len(y) and y.max() >= 10):
            raise ValueError(
                f"corrupt IDX file {paths[1]}: {len(y)} labels for {len(x)} images; "
                "expected one label in 0..9 per image"
            )
        splits[split] = (x[:, None], y)  # add the channel axis: [N, 1, 28, 28]
    return _raw(*splits["train"], *splits["test"], num_classes=10)


# ---------------------------------------------------------------- CIFAR-10/100 (pickle)


def _load_cifar(name: str, data_dir: str | None) -> RawDataset:
    folder, train_files, test_file, label_key, num_classes, url = _CIFAR[name]
    how = f"download and extract {url} and pass data_dir (the {folder!r} folder or its parent)"
    root = _need_dir(name, data_dir, how)
    root = root if (root / test_file).is_file() else root / folder
    missing = [f for f in [*train_files, test_file] if not (root / f).is_file()]
    if missing:
        raise ValueError(f"dataset {name!r}: missing {', '.join(missing)} in {root}; {how}")
    parts = [_read_cifar_batch(root / f, label_key, num_classes) for f in train_files]
    test_x, test_y = _read_cifar_batch(root / test_file, label_key, num_classes)
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return _raw(train_x, train_y, test_x, test_y, num_classes)


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, ...]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8)
        y = np.asarray(batch[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"corrupt CIFAR batch {path}: {type(e).__name__}: {e}") from e
    bad_labels = len(y) != len(x) or (len(y) > 0 and (y.min() < 0 or y.max() >= num_classes))
    if x.ndim != 2 or x.shape[1] != 3072 or bad_labels:
        raise ValueError(
            f"corrupt CIFAR batch {path}: data {x.shape}, {len(y)} labels; expected "
            f"[N, 3072] uint8 and N labels in 0..{num_classes - 1}"
        )
    return x.reshape(-1, 3, 32, 32), y  # rows are channel-major: 1024 R, 1024 G, 1024 B


# ---------------------------------------------------------------- Tiny ImageNet (JPEG folders)


def _tinyimagenet_scan(data_dir: str | None) -> Any:
    """The standard `tiny-imagenet-200` folder as a folder scan (its val/ is the test split)."""
    from .folder import FolderScan

    how = f"download and extract {_TINY_URL} and pass data_dir (the folder or its parent)"
    root = _need_dir("tinyimagenet", data_dir, how)
    root = root if (root / "wnids.txt").is_file() else root / "tiny-imagenet-200"
    ann = root / "val" / "val_annotations.txt"
    if not (root / "wnids.txt").is_file() or not ann.is_file():
        raise ValueError(
            f"dataset 'tinyimagenet': no wnids.txt or val/val_annotations.txt in {root}; {how}"
        )
    # Sorted wnids give the same class indices as torchvision's ImageFolder on train/.
    wnids = sorted(w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip())
    index = {w: i for i, w in enumerate(wnids)}
    train = [
        (str(p.relative_to(root)), index[w])
        for w in wnids
        for p in sorted((root / "train" / w / "images").glob("*.JPEG"))
    ]
    test = []
    for line in filter(str.strip, ann.read_text().splitlines()):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ValueError(f"corrupt {ann}: line {line!r} lacks a known wnid in column 2")
        test.append((f"val/images/{fields[0]}", index[fields[1]]))
    if not train or not test:
        raise ValueError(f"dataset 'tinyimagenet': no train or val images under {root}; {how}")
    return FolderScan(root=root, classes=wnids, splits={"train": train, "test": test})


# ---------------------------------------------------------------- scikit-learn digits


DIGITS_SPLIT = ("train_x", "train_y", "test_x", "test_y")


def _load_digits(cache_dir: Path) -> RawDataset:
    """scikit-learn's digits, 80/20 stratified (seed 0). The split is kept in the data cache:
    importing scikit-learn (and scipy) costs every trial process about 2 s of CPU, the file
    a few milliseconds. Named by scikit-learn's version, whose code makes the split."""
    path = cache_dir / f"digits-scikit-learn-{importlib.metadata.version('scikit-learn')}.npz"
    split = _read_digits(path)
    if split is None:
        split = _split_digits()

        def save(tmp: Path) -> None:
            with tmp.open("wb") as f:
                np.savez(f, train_x=split[0], train_y=split[1], test_x=split[2], test_y=split[3])

        try:
            write_atomic(path, save)
        except OSError as e:  # a read-only cache costs the 2 s, not the run
            print(f"trainers: digits split not cached in {path}: {e}", file=sys.stderr)
    train_x, train_y, test_x, test_y = split
    return _raw(train_x, train_y, test_x, test_y, num_classes=10)


def _read_digits(path: Path) -> tuple[np.ndarray, ...] | None:
    """The cached split; None when it is not there yet or unreadable (torn, foreign)."""
    try:
        with np.load(path) as z:
            return tuple(z[k] for k in DIGITS_SPLIT)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _split_digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Pixels are counts 0..16; scale to the 0..255 range every other dataset uses.
    x = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    tr_x, te_x, tr_y, te_y = train_test_split(
        x, d.target, test_size=0.2, stratify=d.target, random_state=0
    )
    return tr_x, tr_y, te_x, te_y
