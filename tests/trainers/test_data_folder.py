"""A user's own image folder: layouts, formats, preparation, the cache, and bad input."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import trainers.data.folder as folder_mod
import trainers.data.rows as rows_mod
from tests.support import TINY_RUN, write_image_folder
from trainers.data import DataOptions, Rows, build_splits, load_dataset
from trainers.data.folder import MANIFEST, PrepareSettings, load_image, prepare, scan_folder
from tune_app.cli import main

CLASSES = ["ant", "bee", "cat"]
REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def images(n: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def labels(n: int) -> np.ndarray:
    return np.arange(n) % len(CLASSES)


def multiset(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> Counter:
    """Images as bytes, counted per (class, image): order-free comparison of two datasets."""
    x, y = np.asarray(x), np.asarray(y)
    return Counter((int(label), img.tobytes()) for img, label in zip(x, y, strict=True))


@pytest.fixture
def rgb_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    x, y = images(60, (3, 12, 12)), labels(60)
    write_image_folder(tmp_path / "data", x, y, CLASSES, nested=True)
    (tmp_path / "data" / "ant" / "README.txt").write_text("not an image")
    (tmp_path / "data" / "bee" / ".DS_Store").write_bytes(b"\0\1")
    return tmp_path / "data", x, y


def cache(tmp_path: Path) -> str:
    return str(tmp_path / "cache")


def test_class_folders_at_any_depth_prepare_to_the_written_pixels(rgb_folder, tmp_path) -> None:
    root, x, y = rgb_folder
    scan = scan_folder(root)
    assert scan.classes == CLASSES and scan.per_class() == {"ant": 20, "bee": 20, "cat": 20}
    assert scan.skipped == {
        "not an image suffix": ["ant/README.txt"],
        "hidden file": ["bee/.DS_Store"],
    }
    p = prepare(root, cache(tmp_path))
    a = p.arrays
    assert a["train_x"].shape[1:] == (3, 12, 12) and p.manifest["test_held_out"]
    # PNG is lossless and 12 px is the images' own size: every pixel as written, each image once
    got = multiset(
        np.concatenate([a["train_x"], a["test_x"]]), np.concatenate([a["train_y"], a["test_y"]])
    )
    assert got == multiset(x, y)
    # the held-out test split: 10% of each class (2 of 20), seeded, the same on a second prepare
    assert Counter(a["test_y"].tolist()) == {0: 2, 1: 2, 2: 2}
    assert p.manifest["classes"] == CLASSES and p.manifest["skipped"] == {
        "not an image suffix": 1,
        "hidden file": 1,
    }


def test_every_pillow_format_and_mode_is_read_and_converted(tmp_path: Path) -> None:
    rgb = images(1, (3, 8, 8))[0].transpose(1, 2, 0)
    root = tmp_path / "data"
    for c in CLASSES[:2]:
        (root / c).mkdir(parents=True)
    made = {
        "a.png": Image.fromarray(rgb),
        "b.jpg": Image.fromarray(rgb),
        "c.webp": Image.fromarray(rgb),
        "d.bmp": Image.fromarray(rgb),
        "e.tiff": Image.fromarray(rgb),
        "f.png": Image.fromarray(rgb).convert("RGBA"),
        "g.png": Image.fromarray(rgb).convert("P"),
        "h.jpg": Image.fromarray(rgb).convert("CMYK"),
        "i.png": Image.fromarray(rgb[..., 0]),  # one grayscale image among colour ones
    }
    for name, im in made.items():
        im.save(root / "ant" / name)
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(root / "bee" / "anim.gif", save_all=True, append_images=frames[1:])
    p = prepare(root, cache(tmp_path), settings=PrepareSettings(test_fraction=0.5))
    x = np.concatenate([p.arrays["train_x"], p.arrays["test_x"]])
    assert x.shape == (10, 3, 8, 8)  # colour: one non-grey image makes every image RGB
    by_name = {n: load_image(root / "ant" / n, 8, gray=False) for n in made}
    for lossless in ("a.png", "d.bmp", "e.tiff", "f.png"):  # alpha dropped, colours kept
        assert np.array_equal(by_name[lossless], rgb.transpose(2, 0, 1))
    assert np.array_equal(by_name["i.png"], np.repeat(rgb[None, ..., 0], 3, 0))
    gif = load_image(root / "bee" / "anim.gif", 8, gray=False)
    assert np.abs(gif.astype(int) - 10).max() <= 2  # the first frame, not the second (200)


def test_an_all_grayscale_folder_prepares_one_channel(tmp_path: Path) -> None:
    x, y = images(12, (1, 10, 10)), labels(12)
    write_image_folder(tmp_path / "g", x, y, CLASSES)
    p = prepare(tmp_path / "g", cache(tmp_path))
    assert p.manifest["channels"] == 1 and p.arrays["train_x"].shape[1] == 1


def test_train_val_test_folders_are_used_as_given(tmp_path: Path) -> None:
    root = tmp_path / "data"
    parts = {
        s: (images(n, (3, 8, 8), seed=i), labels(n))
        for i, (s, n) in enumerate([("train", 30), ("val", 9), ("test", 6)])
    }
    for split, (x, y) in parts.items():
        write_image_folder(root / split, x, y, CLASSES, suffix=".bmp")
    splits = build_splits(
        "folder",
        root,
        val_fraction=0.5,
        labeled_fraction=0.2,
        options=DataOptions(cache_dir=cache(tmp_path)),
    )
    assert multiset(splits.val_x, splits.val_y) == multiset(*parts["val"])  # not val_fraction
    assert multiset(splits.test_x, splits.test_y) == multiset(*parts["test"])
    assert len(splits.train_x) == 6  # labeled_fraction: 2 of each class's 10 train images
    assert splits.classes == tuple(CLASSES)


def test_unlabeled_images_feed_ssl_as_ssl_source_says(rgb_folder, tmp_path: Path) -> None:
    root, _, _ = rgb_folder
    ux = images(25, (3, 12, 12), seed=7)
    write_image_folder(tmp_path / "pool", ux, np.zeros(25, int), ["any"], nested=True)
    opts = DataOptions(unlabeled_dir=str(tmp_path / "pool"), cache_dir=cache(tmp_path))

    def split(source: str, fraction: float = 1.0):
        return build_splits("folder", root, ssl_source=source, labeled_fraction=fraction,
                            options=opts)  # fmt: skip

    unl = split("unlabeled")
    assert multiset(unl.ssl_x, np.zeros(25)) == multiset(ux, np.zeros(25))
    every = split("all", 0.5)  # every non-validation training image, then the pool
    n_train = 60 - 6 - 6  # minus the held-out test split and validation (10% each)
    assert len(every.ssl_x) == n_train + 25 and len(every.train_x) == n_train // 2
    assert split("same").ssl_x is None
    noisy = build_splits("folder", root, label_noise=0.5, labeled_fraction=1.0, options=opts)
    assert (noisy.train_y != split("same").train_y).any()  # label_noise acts on folders too
    # unlabeled_fraction keeps a seeded share of the pool (and of the folder's unlabelled part)
    some = build_splits("folder", root, ssl_source="unlabeled", unlabeled_fraction=0.4,
                        options=opts)  # fmt: skip
    kept = multiset(some.ssl_x, np.zeros(10))
    assert len(some.ssl_x) == 10 and kept <= multiset(ux, np.zeros(25))
    half = build_splits("folder", root, ssl_source="all", labeled_fraction=0.5,
                        unlabeled_fraction=0.4, options=opts)  # fmt: skip
    assert len(half.ssl_x) == len(half.train_x) + round(0.4 * (n_train - n_train // 2)) + 10


def test_image_size_resizes_the_shorter_side_and_crops_the_centre(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for c in CLASSES[:2]:
        (root / c).mkdir(parents=True)
        wide = np.zeros((20, 40), np.uint8)  # 40 wide, 20 high: left and right quarters white
        wide[:, :10] = wide[:, 30:] = 255
        Image.fromarray(wide).save(root / c / "wide.png")
        Image.fromarray(np.full((30, 30), 100, np.uint8)).save(root / c / "square.png")
    with pytest.raises(ValueError, match=r"images differ in size \(2 sizes: ") as err:
        prepare(root, cache(tmp_path))
    assert "40x20 (2)" in str(err.value) and "30x30 (2)" in str(err.value)
    out = load_image(root / "ant" / "wide.png", 10, gray=True)
    assert out.shape == (1, 10, 10) and out.max() < 40  # the centre 20x20 is black: crop, no pad
    digits = load_dataset("digits", options=DataOptions(image_size=16))
    assert digits.train_x.shape[-2:] == (16, 16) and "resized from 8 to 16" in digits.note


def test_prepared_data_is_reused_until_a_file_changes(rgb_folder, tmp_path, monkeypatch) -> None:
    root, _, _ = rgb_folder
    decoded = []
    real = folder_mod._write_arrays
    monkeypatch.setattr(
        folder_mod, "_write_arrays", lambda *a, **k: decoded.append(1) or real(*a, **k)
    )
    first = prepare(root, cache(tmp_path))
    assert prepare(root, cache(tmp_path)).path == first.path and len(decoded) == 1
    victim = root / "cat" / "00002.png"
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(victim)
    os.utime(victim, ns=(1, 1))  # changed content, and a different modification time
    changed = prepare(root, cache(tmp_path))
    assert changed.path != first.path and len(decoded) == 2
    victim.unlink()
    assert prepare(root, cache(tmp_path)).path not in (first.path, changed.path)
    assert prepare(root, cache(tmp_path), settings=PrepareSettings(image_size=8)).path.exists()
    assert len(decoded) == 4
    assert not list(Path(cache(tmp_path)).glob(".partial-*"))


def test_a_failed_preparation_leaves_nothing_a_later_run_reads(rgb_folder, tmp_path) -> None:
    root, _, _ = rgb_folder
    stale = Path(cache(tmp_path)) / ".partial-data-0000-123"  # what a kill mid-way leaves
    stale.mkdir(parents=True)
    bad = root / "bee" / "00004.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated after the header
    with pytest.raises(ValueError, match=f"{bad}: not a readable image"):
        prepare(root, cache(tmp_path))
    assert sorted(p.name for p in Path(cache(tmp_path)).iterdir()) == [stale.name]
    bad.unlink()
    p = prepare(root, cache(tmp_path))
    assert (p.path / MANIFEST).is_file()


@pytest.mark.skipif(not REAL_FMNIST.is_dir(), reason="needs the dataset-fashion-mnist package")
def test_fashion_mnist_as_png_folders_prepares_to_the_same_images(tmp_path: Path) -> None:
    raw = load_dataset("fashion_mnist")
    names = [f"class{i}" for i in range(10)]
    n_train, n_test = 3000, 500  # a slice: the benchmark prepares all 70,000
    tx, ty = raw.train_x[:n_train].numpy(), raw.train_y[:n_train].numpy()
    sx, sy = raw.test_x[:n_test].numpy(), raw.test_y[:n_test].numpy()
    write_image_folder(tmp_path / "fm" / "train", tx, ty, names)
    write_image_folder(tmp_path / "fm" / "test", sx, sy, names)
    p = prepare(tmp_path / "fm", cache(tmp_path))
    assert p.manifest["channels"] == 1 and p.manifest["image_size"] == 28
    assert multiset(p.arrays["train_x"], p.arrays["train_y"]) == multiset(tx, ty)
    assert multiset(p.arrays["test_x"], p.arrays["test_y"]) == multiset(sx, sy)


def test_a_large_split_is_a_view_of_the_memory_map_gathering_the_same_rows(
    rgb_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _, _ = rgb_folder
    opts = DataOptions(cache_dir=cache(tmp_path))
    copied = build_splits("folder", root, labeled_fraction=0.5, options=opts)
    monkeypatch.setattr(rows_mod, "PRIVATE_COPY_MAX_BYTES", 0)  # every split is "large"
    viewed = build_splits("folder", root, labeled_fraction=0.5, options=opts)
    assert isinstance(viewed.train_x, Rows) and isinstance(copied.train_x, torch.Tensor)
    assert isinstance(viewed.test_x, Rows)
    idx = torch.tensor([5, 0, 5, len(copied.train_x) - 1])
    assert torch.equal(viewed.train_x[idx], copied.train_x[idx])
    assert torch.equal(viewed.val_x[1:4], copied.val_x[1:4])
    assert torch.equal(viewed.train_x[-1], copied.train_x[-1])
    assert (viewed.mean, viewed.std) == (copied.mean, copied.std)
    base = viewed.train_x.parts[0][0]
    assert isinstance(base, np.ndarray) and not base.flags.owndata  # the map, not a copy


def test_train_on_a_folder_through_the_memory_map(
    rgb_folder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _, _ = rgb_folder
    monkeypatch.setattr(rows_mod, "PRIVATE_COPY_MAX_BYTES", 0)  # batches gathered from the map
    config = {**TINY_RUN, "dataset": "folder", "data_dir": str(root), "image_size": 8,
              "ssl_source": "same", "epochs_ssl": 1, "epochs_sl": 1}  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    args = ["train", "--config", str(path), "--out", str(out), "--data-cache", cache(tmp_path)]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["epoch"] == 2
    assert len(list(Path(cache(tmp_path)).glob("data-*"))) == 1
    record = json.loads((out / "data.json").read_text())  # what the labels mean, by the run
    assert record["classes"] == CLASSES and record["test_held_out"] and record["image_size"] == 8


def test_data_command_reports_and_prepares(rgb_folder, tmp_path: Path, capsys) -> None:
    root, _, _ = rgb_folder
    assert main(["data", str(root), "--data-cache", cache(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 classes" in out and "ant                      20" in out
    assert "sizes: 12x12 (60)" in out and "skipped (not an image suffix): 1" in out
    assert "not prepared" in out and not Path(cache(tmp_path)).exists()
    args = ["data", str(root), "--image-size", "8", "--prepare", "--data-cache", cache(tmp_path)]
    assert main(args) == 0
    assert "prepared:" in capsys.readouterr().out
    (made,) = Path(cache(tmp_path)).glob("data-*")
    assert json.loads((made / MANIFEST).read_text())["image_size"] == 8


def _bad(case: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """Build the bad input `case`; returns (extra CLI args, text the error must contain)."""
    root = tmp / "data"
    if case == "missing folder":
        return [], f"{root}: no such folder"
    root.mkdir()
    if case == "empty folder":
        return [], "no class folders"
    x, y = images(8, (3, 8, 8)), labels(8)
    if case == "one class":
        write_image_folder(root, x, np.zeros(8, int), CLASSES)
        return [], "one class folder (ant)"
    write_image_folder(root, x, y, CLASSES)
    if case == "class without images":
        (root / "dog").mkdir()
        (root / "dog" / "notes.txt").write_text("x")
        return [], f"{root / 'dog'}: class folder without images"
    if case == "corrupt image":
        (root / "ant" / "00000.png").write_bytes(b"not a png at all")
        return [], "00000.png: not a readable image"
    if case == "truncated image":
        f = root / "ant" / "00000.png"
        f.write_bytes(f.read_bytes()[:60])
        return ["--prepare"], "00000.png: not a readable image"
    if case == "decompression bomb":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 8x8 = 64 > 2 x 20: a bomb here
        return [], "not a readable image"
    if case == "mixed sizes":
        Image.fromarray(np.zeros((9, 9), np.uint8)).save(root / "bee" / "odd.png")
        return [], "images differ in size"
    if case == "unreadable file":
        (root / "cat" / "gone.png").symlink_to(tmp / "nowhere.png")
        return [], "gone.png: not a readable image"
    if case == "unlabeled without images":
        (tmp / "pool").mkdir()
        return ["--unlabeled", str(tmp / "pool")], f"unlabeled_dir {tmp / 'pool'}: no images"
    raise AssertionError(case)


BAD_CASES = [
    "missing folder",
    "empty folder",
    "one class",
    "class without images",
    "corrupt image",
    "truncated image",
    "decompression bomb",
    "mixed sizes",
    "unreadable file",
    "unlabeled without images",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_folders_exit_2_name_the_path_and_leave_no_cache(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    extra, expected = _bad(case, tmp_path, monkeypatch)
    args = ["data", str(tmp_path / "data"), "--prepare", "--data-cache", cache(tmp_path), *extra]
    assert main(list(dict.fromkeys(args))) == 2
    captured = capsys.readouterr()
    assert expected in captured.err + captured.out
    made = list(Path(cache(tmp_path)).glob("*")) if Path(cache(tmp_path)).exists() else []
    assert made == []


@pytest.mark.parametrize("case", ["corrupt image", "image size the model cannot take"])
def test_a_search_on_a_bad_folder_exits_2_before_any_trial(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tests.support import SPACE

    x, y = images(9, (3, 8, 8)), labels(9)
    root = tmp_path / "data"
    write_image_folder(root, x, y, CLASSES)
    trainer = {**SPACE["trainer"], "dataset": "folder", "data_dir": str(root),
               "ssl_source": "same"}  # fmt: skip
    if case == "corrupt image":
        (root / "bee" / "00001.png").write_bytes(b"\x89PNG broken")
        expected = "00001.png: not a readable image"
    else:
        trainer = {**trainer, "model": "resnet18", "image_size": 4}
        expected = "trainer.image_size = 4 (the data's): model resnet18: resnet18 needs"
    space = tmp_path / "s.yaml"
    space.write_text(yaml.safe_dump({**SPACE, "trainer": trainer}))
    storage = tmp_path / "exp"
    args = ["search", "--space", str(space), "--storage-path", str(storage), "--name", "b"]
    assert main(args) == 2
    assert expected in capsys.readouterr().err
    assert not storage.exists()  # no experiment, no half-written cache under it
