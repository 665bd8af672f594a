"""Tests for trainers.data: loaders on real-format fixtures, splits, augmentation."""

from __future__ import annotations

import gzip
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.support import (
    decode_index,
    indexed_images,
    random_fashion_mnist,
    write_cifar,
    write_fashion_mnist,
    write_idx,
    write_tinyimagenet,
)
from trainers.data import DATASETS, DataOptions, augment, build_splits, load_dataset, normalize

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")
# Unbalanced classes (150, 180, ..., 420 images) so stratification is actually exercised.
CLASS_COUNTS = np.array([150 + 30 * c for c in range(10)])


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fashion-MNIST-format files whose training images encode their own index."""
    rng = np.random.default_rng(1)
    train_y = rng.permutation(np.repeat(np.arange(10), CLASS_COUNTS))
    test_y = rng.integers(0, 10, 50)
    root = tmp_path_factory.mktemp("fmnist")
    x = indexed_images(train_y, (1, 28, 28), seed=2)
    return write_fashion_mnist(root, x, train_y, indexed_images(test_y, (1, 28, 28)), test_y)


def true_labels(fmnist_dir: Path) -> np.ndarray:
    return load_dataset("fashion_mnist", fmnist_dir).train_y.numpy()


# ---------------------------------------------------------------- loaders


def test_fashion_mnist_round_trip(tmp_path: Path) -> None:
    arrays = random_fashion_mnist(tmp_path, n_train=37, n_test=11)
    raw = load_dataset("fashion_mnist", tmp_path)
    assert raw.train_x.dtype == torch.uint8 and raw.train_y.dtype == torch.int64
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(raw, key).numpy(), value)
    assert raw.num_classes == 10


@pytest.mark.parametrize(
    ("name", "num_classes", "point_at_folder"),
    [
        ("cifar10", 10, False),
        ("cifar10", 10, True),
        ("cifar100", 100, False),
        ("cifar100", 100, True),
    ],
)
def test_cifar_round_trip(
    tmp_path: Path, name: str, num_classes: int, point_at_folder: bool
) -> None:
    rng = np.random.default_rng(0)
    tr_x, te_x = (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8) for n in (23, 7))
    tr_y, te_y = rng.integers(0, num_classes, 23), rng.integers(0, num_classes, 7)
    folder = write_cifar(tmp_path, name, tr_x, tr_y, te_x, te_y)
    raw = load_dataset(name, folder if point_at_folder else tmp_path)
    for got, want in (
        (raw.train_x, tr_x),
        (raw.train_y, tr_y),
        (raw.test_x, te_x),
        (raw.test_y, te_y),
    ):
        np.testing.assert_array_equal(got.numpy(), want)
    assert raw.num_classes == num_classes


@pytest.mark.parametrize("point_at_folder", [False, True])
def test_tinyimagenet_round_trip(tmp_path: Path, point_at_folder: bool) -> None:
    written = write_tinyimagenet(tmp_path, n_classes=3, n_train=4, n_val=6)
    raw = load_dataset(
        "tinyimagenet", tmp_path / "tiny-imagenet-200" if point_at_folder else tmp_path
    )
    assert raw.num_classes == 3 and raw.train_x.shape == (12, 3, 64, 64)
    for split, (xs, ys) in {
        "train": (raw.train_x, raw.train_y),
        "val": (raw.test_x, raw.test_y),
    }.items():
        assert ys.tolist() == [c for _, c in written[split]]
        for img, (path, _) in zip(xs, written[split], strict=True):
            ref = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
            np.testing.assert_array_equal(img.numpy(), ref)  # same pixels, same order


def test_digits_split_is_stratified_and_scaled() -> None:
    raw = load_dataset("digits")
    assert raw.train_x.shape == (1437, 1, 8, 8) and raw.test_x.shape == (360, 1, 8, 8)
    assert raw.train_x.max() == 255 and raw.train_x.dtype == torch.uint8
    share = raw.test_y.bincount(minlength=10) / raw.train_y.bincount(minlength=10)
    assert torch.all((share - 0.25).abs() < 0.05)  # 80/20 within every class


def test_digits_split_is_cached_and_a_bad_cache_file_is_split_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The split is kept in the data cache, so a later process reads it without importing
    scikit-learn; a torn cache file is a miss, not an error, and is written again."""
    from trainers.data.loaders import _load_cached

    options = DataOptions(cache_dir=str(tmp_path))
    first = load_dataset("digits", options=options)
    (cached,) = tmp_path.glob("digits-scikit-learn-*.npz")
    _load_cached.cache_clear()  # what a new process would do
    again = load_dataset("digits", options=options)
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(again, name), getattr(first, name))
    cached.write_bytes(cached.read_bytes()[:100])  # torn
    _load_cached.cache_clear()
    assert torch.equal(load_dataset("digits", options=options).test_y, first.test_y)
    assert cached.stat().st_size > 100  # written whole again
    code = (
        "import sys; from trainers.data import load_dataset, DataOptions; "
        f"load_dataset('digits', options=DataOptions(cache_dir={str(tmp_path)!r})); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
    # a cache that cannot be written costs the split, not the load
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    _load_cached.cache_clear()
    unwritable = load_dataset("digits", options=DataOptions(cache_dir=str(blocked / "cache")))
    assert torch.equal(unwritable.test_y, first.test_y)
    assert "digits split not cached" in capsys.readouterr().err


def test_the_default_data_cache_is_under_home_not_a_folder_named_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers.data.loaders import CACHE_ENV, _load_cached

    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    _load_cached.cache_clear()
    load_dataset("digits")
    assert list((tmp_path / "home" / ".cache" / "tune-app" / "data").glob("digits-*.npz"))
    assert not (tmp_path / "~").exists()


@pytest.mark.skipif(not REAL_FMNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist() -> None:
    raw = load_dataset("fashion_mnist")
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    assert raw.train_y.bincount().tolist() == [6000] * 10 and raw.num_classes == 10
    s = build_splits("fashion_mnist", labeled_fraction=0.1, ssl_source="unlabeled")
    assert (len(s.train_x), len(s.val_x), len(s.ssl_x)) == (5400, 6000, 48600)
    # Fashion-MNIST's well known pixel statistics.
    assert s.mean[0] == pytest.approx(0.286, abs=0.005) and s.std[0] == pytest.approx(
        0.353, abs=0.005
    )


# ---------------------------------------------------------------- loader errors


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(ValueError, match="imagenet1k") as e:
        load_dataset("imagenet1k")
    assert all(d in str(e.value) for d in DATASETS)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("fashion_mnist", "apt-get install dataset-fashion-mnist"),
        ("cifar10", "cifar-10-python.tar.gz"),
        ("cifar100", "cifar-100-python.tar.gz"),
        ("tinyimagenet", "tiny-imagenet-200.zip"),
    ],
)
def test_missing_dir_names_path_and_remedy(tmp_path: Path, name: str, hint: str) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError) as e:
        load_dataset(name, missing)
    msg = str(e.value)
    assert name in msg and str(missing) in msg and hint in msg and "data_dir" in msg


def _gz(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(data)


def _flip_bytes(path: Path) -> None:
    """Invert deflate bytes after the 10-byte gzip header: zlib fails inside the stream."""
    data = path.read_bytes()
    path.write_bytes(data[:10] + bytes(b ^ 0xFF for b in data[10:40]) + data[40:])


CORRUPTIONS = {
    "wrong image magic": lambda d, x, y: write_idx(d / "train-images-idx3-ubyte.gz", x, magic=2049),
    "wrong label magic": lambda d, x, y: write_idx(d / "train-labels-idx1-ubyte.gz", y, magic=2051),
    "truncated images": lambda d, x, y: write_idx(d / "train-images-idx3-ubyte.gz", x, cut=5),
    "too few labels": lambda d, x, y: write_idx(d / "train-labels-idx1-ubyte.gz", y[:-1]),
    "header only": lambda d, x, y: _gz(d / "train-images-idx3-ubyte.gz", b"\x00\x00\x08\x03"),
    "not gzip": lambda d, x, y: (d / "train-labels-idx1-ubyte.gz").write_bytes(b"plain bytes"),
    "cut gzip": lambda d, x, y: (d / "train-images-idx3-ubyte.gz").write_bytes(
        (d / "train-images-idx3-ubyte.gz").read_bytes()[:-40]
    ),
    "corrupt deflate data": lambda d, x, y: _flip_bytes(d / "train-images-idx3-ubyte.gz"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_idx_names_file(tmp_path: Path, corruption: str) -> None:
    arrays = random_fashion_mnist(tmp_path, n_train=30)
    CORRUPTIONS[corruption](tmp_path, arrays["train_x"][:, 0], arrays["train_y"].astype(np.uint8))
    with pytest.raises(ValueError, match=r"corrupt IDX file .*train-(images|labels)"):
        load_dataset("fashion_mnist", tmp_path)


def test_corrupt_cifar_batch_names_file(tmp_path: Path) -> None:
    x = np.zeros((5, 3, 32, 32), np.uint8)
    folder = write_cifar(tmp_path, "cifar10", x, np.zeros(5, int), x, np.zeros(5, int))
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt CIFAR batch .*data_batch_3"):
        load_dataset("cifar10", folder)


def test_corrupt_jpeg_names_file(tmp_path: Path) -> None:
    written = write_tinyimagenet(tmp_path)
    bad = written["val"][2][0]
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"{bad.name}: not a readable image"):
        load_dataset("tinyimagenet", tmp_path)


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize(
    ("val_fraction", "labeled_fraction"), [(0.1, 1.0), (0.2, 0.1), (0.05, 0.013), (0.5, 0.5)]
)
def test_split_fractions_are_stratified(
    fmnist_dir: Path, val_fraction: float, labeled_fraction: float
) -> None:
    ssl_source = "unlabeled" if labeled_fraction < 1 else "same"
    s = build_splits(
        "fashion_mnist",
        fmnist_dir,
        val_fraction=val_fraction,
        labeled_fraction=labeled_fraction,
        ssl_source=ssl_source,
    )
    val_counts = s.val_y.bincount(minlength=10).numpy()
    rest = CLASS_COUNTS - val_counts
    train_counts = s.train_y.bincount(minlength=10).numpy()
    assert np.all(np.abs(val_counts - val_fraction * CLASS_COUNTS) <= 1)
    assert np.all(np.abs(train_counts - labeled_fraction * rest) <= 1) and train_counts.min() >= 1
    assert abs(len(s.val_x) - val_fraction * CLASS_COUNTS.sum()) <= 10  # one per class at most


def test_splits_partition_the_training_images(fmnist_dir: Path) -> None:
    s = build_splits("fashion_mnist", fmnist_dir, labeled_fraction=0.3, ssl_source="unlabeled")
    parts = [decode_index(t) for t in (s.train_x, s.val_x, s.ssl_x)]
    union = np.concatenate(parts)
    assert len(np.unique(union)) == len(union) == CLASS_COUNTS.sum()  # disjoint and complete
    labels = true_labels(fmnist_dir)
    np.testing.assert_array_equal(s.val_y.numpy(), labels[parts[1]])
    np.testing.assert_array_equal(s.train_y.numpy(), labels[parts[0]])


def test_same_seed_same_splits_other_seed_differs(fmnist_dir: Path) -> None:
    def run(seed: int) -> list[np.ndarray]:
        kwargs = {"labeled_fraction": 0.2, "ssl_source": "unlabeled", "label_noise": 0.3}
        s = build_splits("fashion_mnist", fmnist_dir, seed=seed, **kwargs)
        return [decode_index(s.train_x), s.train_y.numpy(), decode_index(s.val_x)]

    a, b, c = run(7), run(7), run(8)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.95])
def test_label_noise_rate_and_only_other_classes(fmnist_dir: Path, p: float) -> None:
    s = build_splits("fashion_mnist", fmnist_dir, label_noise=p, seed=3)
    labels = true_labels(fmnist_dir)
    clean = labels[decode_index(s.train_x)]
    changed = s.train_y.numpy() != clean
    n = len(clean)
    # If a "replacement" could redraw the same class the rate would be p * 9/10: 4 sigma apart.
    assert abs(changed.sum() - p * n) <= 4 * math.sqrt(n * p * (1 - p))
    offsets = np.bincount((s.train_y.numpy() - clean)[changed] % 10, minlength=10)
    k = changed.sum()
    assert np.all(np.abs(offsets[1:] - k / 9) <= 4 * math.sqrt(k / 9 * 8 / 9) + 1)
    np.testing.assert_array_equal(s.val_y.numpy(), labels[decode_index(s.val_x)])  # never noised
    assert torch.equal(s.test_y, load_dataset("fashion_mnist", fmnist_dir).test_y)


def test_mean_std_of_train_pool(fmnist_dir: Path) -> None:
    s = build_splits("fashion_mnist", fmnist_dir, labeled_fraction=0.5)
    ref = s.train_x.numpy().astype(np.float64) / 255
    assert s.mean == pytest.approx((ref.mean(),), abs=1e-9)
    assert s.std == pytest.approx((ref.std(),), abs=1e-9)
    assert (s.in_chans, s.image_size, s.num_classes) == (1, 28, 10)


def test_ssl_from_other_dataset_converts_channels_and_size(tmp_path: Path) -> None:
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [40, 200, 90]], np.uint8)
    x = np.broadcast_to(colours[:, :, None, None], (4, 3, 32, 32)).copy()
    write_cifar(tmp_path, "cifar10", x, np.arange(4), x, np.arange(4))
    random_fashion_mnist(tmp_path, n_train=40)  # same data_dir holds both datasets' files
    s = build_splits("fashion_mnist", tmp_path, ssl_source="cifar10")
    assert s.ssl_x.shape == (4, 1, 28, 28) and s.ssl_x.dtype == torch.uint8
    luma = colours.astype(float) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(s.ssl_x.float().mean((1, 2, 3)).numpy(), luma, atol=1)
    rgb = build_splits("cifar10", tmp_path, val_fraction=0.3, ssl_source="digits")
    assert rgb.ssl_x.shape == (1437, 3, 32, 32)
    assert torch.equal(rgb.ssl_x[:, 0], rgb.ssl_x[:, 2])  # gray repeated into RGB
    digits = load_dataset("digits").train_x.float()
    ref = F.interpolate(digits, size=(32, 32), mode="bilinear", antialias=True).round()
    assert torch.equal(rgb.ssl_x[:, 1:2].float(), ref)


@pytest.mark.parametrize(
    ("setting", "kwargs"),
    [
        ("val_fraction", {"val_fraction": 0.0}),
        ("val_fraction", {"val_fraction": 1.0}),
        ("labeled_fraction", {"labeled_fraction": 0.0}),
        ("labeled_fraction", {"labeled_fraction": 1.5}),
        ("labeled_fraction", {"labeled_fraction": float("nan")}),
        ("label_noise", {"label_noise": -0.1}),
        ("label_noise", {"label_noise": 1.0}),
        ("ssl_source", {"ssl_source": "imagenet"}),
        ("ssl_source", {"ssl_source": "fashion_mnist"}),
        ("labeled_fraction", {"ssl_source": "unlabeled", "labeled_fraction": 1.0}),
        ("dataset", {"dataset": "mnist"}),
    ],
)
def test_bad_settings_name_the_setting(fmnist_dir: Path, setting: str, kwargs: dict) -> None:
    kwargs = {"dataset": "fashion_mnist", "data_dir": fmnist_dir, **kwargs}
    with pytest.raises(ValueError, match=setting):
        build_splits(**kwargs)


# ---------------------------------------------------------------- augment / normalize


def _brute_force_match(
    src: torch.Tensor, out: torch.Tensor, pad: int
) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flipped) whose crop of the zero-padded src equals out, by a plain loop."""
    h, w = src.shape[-2:]
    padded = F.pad(src, (pad, pad, pad, pad))
    hits = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            hits += [
                (dy, dx, f) for f in (False, True) if torch.equal(crop.flip(-1) if f else crop, out)
            ]
    return hits


AUGMENT_CASES = [((64, 3, 8, 8), 2, True), ((48, 1, 6, 9), 3, False), ((16, 2, 5, 5), 0, True)]


@pytest.mark.parametrize(("shape", "pad", "flip"), AUGMENT_CASES)
def test_augment_is_a_translation_and_flip(shape: tuple[int, ...], pad: int, flip: bool) -> None:
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = augment(x, torch.Generator().manual_seed(0), pad=pad, flip=flip)
    assert out.shape == x.shape and out.dtype == torch.uint8
    draws = []
    for i in range(len(x)):
        hits = _brute_force_match(x[i], out[i], pad)
        assert len(hits) == 1, f"sample {i}: {hits}"
        draws.append(hits[0])
    dys, dxs, flips = zip(*draws, strict=True)
    assert set(dys) == set(dxs) == set(range(2 * pad + 1))  # every offset gets used
    n = len(x)
    if flip:
        assert abs(sum(flips) - n / 2) <= 4 * math.sqrt(n / 4)
    else:
        assert not any(flips)


def test_augment_uses_only_its_generator() -> None:
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, augment(x, torch.Generator().manual_seed(6)))
    assert torch.equal(augment(x, torch.Generator(), pad=0, flip=False), x)


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (3, 5, 5)])
def test_normalize_per_channel(shape: tuple[int, ...]) -> None:
    x = torch.randint(0, 256, shape, dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    out = normalize(x, mean, std)
    ref = (x.numpy() / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="channel"):
        normalize(x, (0.1,) * 2, (0.2,) * 2)


def test_ssl_source_all_is_the_labelled_and_unlabelled_images_together(fmnist_dir: Path) -> None:
    kwargs = {"labeled_fraction": 0.3, "seed": 4}
    unlab = build_splits("fashion_mnist", fmnist_dir, ssl_source="unlabeled", **kwargs)
    every = build_splits("fashion_mnist", fmnist_dir, ssl_source="all", **kwargs)
    # the labelled pool, validation and test do not move; only the SSL images grow
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "mean", "std"):
        a, b = getattr(unlab, name), getattr(every, name)
        assert (a == b).all() if isinstance(a, torch.Tensor) else a == b, name
    ssl = np.sort(decode_index(every.ssl_x))
    expected = np.sort(np.concatenate([decode_index(unlab.train_x), decode_index(unlab.ssl_x)]))
    np.testing.assert_array_equal(ssl, expected)
    assert not set(ssl) & set(decode_index(every.val_x))  # never the validation images


def test_unlabeled_fraction_keeps_a_seeded_share_of_the_unlabelled_images(
    fmnist_dir: Path,
) -> None:
    kwargs = {"labeled_fraction": 0.3, "seed": 4}
    whole = build_splits("fashion_mnist", fmnist_dir, ssl_source="all", **kwargs)
    half = build_splits(
        "fashion_mnist", fmnist_dir, ssl_source="all", unlabeled_fraction=0.5, **kwargs
    )
    unlab = build_splits("fashion_mnist", fmnist_dir, ssl_source="unlabeled", **kwargs)
    half_unlab = build_splits(
        "fashion_mnist", fmnist_dir, ssl_source="unlabeled", unlabeled_fraction=0.5, **kwargs
    )
    # the labelled pool, validation and test do not depend on the share
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "mean", "std"):
        a, b = getattr(whole, name), getattr(half, name)
        assert (a == b).all() if isinstance(a, torch.Tensor) else a == b, name
    kept = set(decode_index(half_unlab.ssl_x))
    assert kept < set(decode_index(unlab.ssl_x))
    assert len(kept) == round(0.5 * len(unlab.ssl_x))
    # "all" keeps every labelled image and the same unlabelled share as "unlabeled"
    expected = np.sort(np.concatenate([decode_index(half.train_x), sorted(kept)]))
    np.testing.assert_array_equal(np.sort(decode_index(half.ssl_x)), expected)
    again = build_splits(
        "fashion_mnist", fmnist_dir, ssl_source="all", unlabeled_fraction=0.5, **kwargs
    )
    assert (again.ssl_x == half.ssl_x).all()  # seeded
    with pytest.raises(ValueError, match="unlabeled_fraction"):
        build_splits("fashion_mnist", fmnist_dir, unlabeled_fraction=0.0)


def test_ssl_source_all_without_unlabelled_images_is_same(fmnist_dir: Path) -> None:
    s = build_splits("fashion_mnist", fmnist_dir, labeled_fraction=1.0, ssl_source="all")
    assert s.ssl_x is None  # SSL on the labelled pool: MIX batches are not mixed with lam
