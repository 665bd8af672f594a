"""Writers of tiny datasets in the real on-disk formats (IDX gzip, CIFAR pickles, JPEG folders).

Images made by `indexed_images` carry their own index in two pixels, so tests can tell which
original training image ended up in which split.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

IDX_IMAGES, IDX_LABELS = 2051, 2049


def indexed_images(labels: np.ndarray, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Random uint8 images [N, C, H, W] whose first two pixels encode the image index."""
    n = len(labels)
    x = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    flat = x.reshape(n, -1)
    flat[:, 0], flat[:, 1] = np.arange(n) // 256, np.arange(n) % 256
    return x


def decode_index(x: object) -> np.ndarray:
    """Inverse of `indexed_images`: the index stored in each image of x [N, C, H, W] (any array)."""
    flat = np.asarray(x).reshape(len(x), -1).astype(np.int64)
    return flat[:, 0] * 256 + flat[:, 1]


def write_idx(path: Path, arr: np.ndarray, magic: int | None = None, cut: int = 0) -> Path:
    """Write arr (uint8 [N] or [N, H, W]) as a gzipped IDX file.

    `magic` overrides the header's magic number; `cut` drops that many bytes from the end of
    the payload (a truncated file whose header still claims the full size).
    """
    if magic is None:
        magic = IDX_IMAGES if arr.ndim == 3 else IDX_LABELS
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    with gzip.open(path, "wb") as f:
        f.write(data[: len(data) - cut])
    return path


def write_fashion_mnist(
    root: Path, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> Path:
    """Write the four Fashion-MNIST IDX .gz files; x arrays are uint8 [N, 1, 28, 28]."""
    root.mkdir(parents=True, exist_ok=True)
    for stem, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", x[:, 0])
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return root


def random_fashion_mnist(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    """Write random Fashion-MNIST files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 1, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train),
        "test_x": rng.integers(0, 256, (n_test, 1, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test),
    }
    write_fashion_mnist(root, **arrays)
    return arrays


def write_cifar(
    root: Path,
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
) -> Path:
    """Write CIFAR-10/100 python pickles under root/<standard folder>; x uint8 [N, 3, 32, 32]."""
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    key = b"labels" if name == "cifar10" else b"fine_labels"
    if name == "cifar10":  # five training batches; unequal sizes are fine for the format
        parts = np.array_split(np.arange(len(train_x)), 5)
        files = {f"data_batch_{i + 1}": part for i, part in enumerate(parts)}
    else:
        files = {"train": np.arange(len(train_x))}
    batches = {f: (train_x[idx], train_y[idx]) for f, idx in files.items()}
    batches["test_batch" if name == "cifar10" else "test"] = (test_x, test_y)
    for fname, (x, y) in batches.items():
        batch = {b"data": x.reshape(len(x), 3072), key: [int(v) for v in y], b"batch_label": b"t"}
        with open(folder / fname, "wb") as f:
            pickle.dump(batch, f)
    return folder


def write_tinyimagenet(
    root: Path, n_classes: int = 3, n_train: int = 4, n_val: int = 6, seed: int = 0
) -> dict:
    """Write a tiny `tiny-imagenet-200` folder of 64x64 JPEGs (each a distinct flat colour).

    Returns the written JPEG paths and labels per split, labels indexing the sorted wnids.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / "tiny-imagenet-200"
    wnids = [f"n{int(v):08d}" for v in rng.choice(10**8, n_classes, replace=False)]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")  # file order need not be sorted
    colours = rng.choice(256**3, n_classes * n_train + n_val, replace=False)
    rgb = np.stack([colours // 65536, colours // 256 % 256, colours % 256], 1).astype(np.uint8)

    def save(path: Path, i: int) -> Path:
        Image.fromarray(np.full((64, 64, 3), rgb[i], np.uint8)).save(path, quality=95)
        return path

    out = {"train": [], "val": []}
    for c, w in enumerate(sorted(wnids)):
        (base / "train" / w / "images").mkdir(parents=True)
        for j in range(n_train):
            path = save(base / "train" / w / "images" / f"{w}_{j}.JPEG", c * n_train + j)
            out["train"].append((path, c))
    lines = []
    for j in range(n_val):
        c = int(rng.integers(n_classes))
        path = save(base / "val" / "images" / f"val_{j}.JPEG", n_classes * n_train + j)
        out["val"].append((path, c))
        lines.append(f"val_{j}.JPEG\t{sorted(wnids)[c]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return out


def write_image_folder(
    root: Path,
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    suffix: str = ".png",
    nested: bool = False,
) -> list[Path]:
    """Write uint8 images x [N, C, H, W] as `root/<class>/[sub/]<i><suffix>` with Pillow.

    `nested` puts every other image one folder deeper (images at any depth below their class).
    Returns the paths written, in image order.
    """
    from PIL import Image

    paths = []
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / classes[int(label)] / ("deeper" if nested and i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        path = folder / f"{i:05d}{suffix}"
        Image.fromarray(np.ascontiguousarray(arr)).save(path)
        paths.append(path)
    return paths
