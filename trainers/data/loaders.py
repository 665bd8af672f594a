"""Raw dataset loaders: files on disk -> uint8 image tensors [N, C, H, W] and int64 labels.

Nothing here downloads: every loader reads the dataset's standard on-disk format and raises a
`ValueError` saying where it looked and how to get the files when they are missing.
"""

from __future__ import annotations

import functools
import gzip
import pickle
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tinyimagenet", "digits")

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


def load_dataset(name: str, data_dir: str | Path | None = None) -> RawDataset:
    """Load a dataset's train and test split into memory.

    Args:
        name: one of `DATASETS`.
        data_dir: folder holding the files (the README's "Data" section); `None` uses the
            default location where there is one (Fashion-MNIST's Debian package, scikit-learn's
            bundled digits).

    Returns:
        The raw dataset, cached per `(name, data_dir)` because trials reload it repeatedly.

    Raises:
        ValueError: unknown name, missing files (naming the path and how to get them) or
            corrupt files (naming the file).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")
    key = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    return _load_cached(name, key)


@functools.lru_cache(maxsize=4)  # small: one decoded tinyimagenet is ~1.2 GB
def _load_cached(name: str, data_dir: str | None) -> RawDataset:
    if name == "fashion_mnist":
        return _load_fashion_mnist(Path(data_dir or FASHION_MNIST_DIR))
    if name in _CIFAR:
        return _load_cifar(name, data_dir)
    if name == "tinyimagenet":
        return _load_tinyimagenet(data_dir)
    return _load_digits()


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


def _load_tinyimagenet(data_dir: str | None) -> RawDataset:
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
        (p, index[w]) for w in wnids for p in sorted((root / "train" / w / "images").glob("*.JPEG"))
    ]
    val = []
    for line in filter(str.strip, ann.read_text().splitlines()):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ValueError(f"corrupt {ann}: line {line!r} lacks a known wnid in column 2")
        val.append((root / "val" / "images" / fields[0], index[fields[1]]))
    if not train or not val:
        raise ValueError(f"dataset 'tinyimagenet': no train or val images under {root}; {how}")
    return _raw(*_decode_jpegs(train), *_decode_jpegs(val), num_classes=len(wnids))


def _decode_jpegs(items: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image  # only tinyimagenet needs PIL; keep the import off the common path

    x = np.empty((len(items), 3, 64, 64), dtype=np.uint8)  # filled in place: no second copy

    def decode(i: int) -> None:
        path = items[i][0]
        try:
            with Image.open(path) as im:
                a = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise ValueError(f"corrupt or missing image {path}: {e}") from e
        if a.shape != (64, 64, 3):
            raise ValueError(f"image {path} is {a.shape[1]}x{a.shape[0]}, expected 64x64")
        x[i] = a.transpose(2, 0, 1)

    # PIL's decoder releases the GIL, so threads overlap the 100k small decodes.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(decode, range(len(items))))  # list() re-raises a worker's error
    return x, np.array([y for _, y in items], dtype=np.int64)


# ---------------------------------------------------------------- scikit-learn digits


def _load_digits() -> RawDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    # Pixels are counts 0..16; scale to the 0..255 range every other dataset uses.
    x = np.rint(d.images * (255 / 16)).astype(np.uint8)[:, None]
    tr_x, te_x, tr_y, te_y = train_test_split(
        x, d.target, test_size=0.2, stratify=d.target, random_state=0
    )
    return _raw(tr_x, tr_y, te_x, te_y, num_classes=10)
