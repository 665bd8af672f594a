"""A user's own image folder, decoded once into memory-mapped uint8 arrays (docs/data.md).

Layouts read (the one `torchvision.datasets.ImageFolder` reads, plus named splits):

    DATA/<class>/**/<image>                       every image is a training image
    DATA/train/<class>/**/<image>  [DATA/val/...] [DATA/test/...]   splits used as given

`scan_folder` lists the files (no decoding); `prepare` decodes and resizes them in parallel
into a folder of `.npy` files plus `manifest.json` under a cache directory, keyed by a
fingerprint of every file's path, size and modification time and of the settings. The folder
appears under its final name only when complete (written beside it, then renamed), so a kill
leaves nothing a later run reads. `open_prepared` maps the arrays read-only-shared (copy on
write): every trial process reads the same page cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
SPLIT_NAMES = ("train", "val", "test")
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_GRAY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}
_CHUNK_MIN, _CHUNK_MAX = 16, 1024  # images per decoding task


@dataclass
class FolderScan:
    """What a folder holds, before any decoding."""

    root: Path
    classes: list[str]
    # split -> [(path relative to root, class index)]; "train" always, "val"/"test" if given
    splits: dict[str, list[tuple[str, int]]]
    unlabeled_root: Path | None = None
    unlabeled: list[str] = field(default_factory=list)  # paths relative to unlabeled_root
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> paths

    def all_files(self) -> list[Path]:
        files = [self.root / p for items in self.splits.values() for p, _ in items]
        if self.unlabeled_root is not None:
            files += [self.unlabeled_root / p for p in self.unlabeled]
        return files

    def per_class(self, split: str = "train") -> dict[str, int]:
        counts = Counter(y for _, y in self.splits.get(split, []))
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}


def _images_below(folder: Path, root: Path, skipped: dict[str, list[str]]) -> list[str]:
    """Image files at any depth below `folder`, as sorted paths relative to `root`."""
    found = []
    prefix = len(str(root)) + 1
    for here, dirs, files in os.walk(folder, followlinks=True):  # strings: 100k Paths add up
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .git, .ipynb_checkpoints
        for name in files:
            rel = os.path.join(here, name)[prefix:]
            if name.startswith("."):
                skipped.setdefault("hidden file", []).append(rel)
            elif os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(rel)
            else:
                skipped.setdefault("not an image suffix", []).append(rel)
    return sorted(found)


def _class_dirs(folder: Path, root: Path, skipped: dict[str, list[str]]) -> list[Path]:
    dirs = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            dirs.append(entry)
        elif entry.is_file():
            skipped.setdefault("not inside a class folder", []).append(str(entry.relative_to(root)))
    return dirs


def scan_folder(data_dir: str | Path, unlabeled_dir: str | Path | None = None) -> FolderScan:
    """List a folder's classes and images. Raises ValueError naming the path on bad layouts."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise ValueError(f"data_dir {root}: no such folder")
    skipped: dict[str, list[str]] = {}
    split_layout = (root / "train").is_dir()
    tops = {s: root / s for s in SPLIT_NAMES if (root / s).is_dir()} if split_layout else {}
    train_root = tops.get("train", root)
    class_dirs = _class_dirs(train_root, root, skipped)
    if not class_dirs:
        raise ValueError(
            f"data_dir {train_root}: no class folders; expected {train_root}/<class>/<image> "
            "(one folder per class, images at any depth below it)"
        )
    if len(class_dirs) < 2:
        raise ValueError(
            f"data_dir {train_root}: one class folder ({class_dirs[0].name}); a classifier "
            "needs at least two"
        )
    classes = [d.name for d in class_dirs]
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[tuple[str, int]]] = {}
    tops = {"train": train_root} | {s: p for s, p in tops.items() if s != "train"}
    for split, top in tops.items():
        items = []
        for d in _class_dirs(top, root, skipped):
            if d.name not in index:
                raise ValueError(
                    f"data_dir {d}: class {d.name!r} is not a class of {train_root} "
                    f"({', '.join(classes[:8])}{' ...' if len(classes) > 8 else ''})"
                )
            files = _images_below(d, root, skipped)
            if not files and split == "train":
                raise ValueError(f"data_dir {d}: class folder without images ({IMAGE_TEXT})")
            items += [(f, index[d.name]) for f in files]
        if not items:
            raise ValueError(f"data_dir {top}: no images ({IMAGE_TEXT})")
        splits[split] = items
    scan = FolderScan(root=root, classes=classes, splits=splits, skipped=skipped)
    if unlabeled_dir is not None:
        uroot = Path(unlabeled_dir).expanduser()
        if not uroot.is_dir():
            raise ValueError(f"unlabeled_dir {uroot}: no such folder")
        uskipped: dict[str, list[str]] = {}
        scan.unlabeled_root, scan.unlabeled = uroot, _images_below(uroot, uroot, uskipped)
        for reason, paths in uskipped.items():
            skipped.setdefault(reason, []).extend(str(uroot / p) for p in paths)
        if not scan.unlabeled:
            raise ValueError(f"unlabeled_dir {uroot}: no images ({IMAGE_TEXT})")
    return scan


IMAGE_TEXT = "allowed: " + ", ".join(IMAGE_SUFFIXES)


# ---------------------------------------------------------------- reading one image


def _open(path: Path) -> Any:
    """Open an image with Pillow, decompression bombs as errors (not warnings)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def read_header(path: Path) -> tuple[int, int, str]:
    """(width, height, mode) from the file's header, or ValueError naming the file."""
    from PIL import Image

    try:
        with _open(path) as im:
            return im.size[0], im.size[1], im.mode
    except (OSError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: not a readable image: {e}") from e


def load_image(path: Path, image_size: int, gray: bool) -> np.ndarray:
    """Decode one image to uint8 [C, image_size, image_size] (see `decode`)."""
    with warnings.catch_warnings():
        _bombs_are_errors()
        return decode(path, image_size, gray)[0]


def _bombs_are_errors() -> None:
    """Pillow only warns between its limit and twice it: treat every bomb as bad input.

    Called once per decoding worker (its initializer) and inside `load_image`."""
    from PIL import Image

    warnings.simplefilter("error", Image.DecompressionBombWarning)


def decode(
    path: str | Path, image_size: int, gray: bool
) -> tuple[np.ndarray, tuple[int, int, str]]:
    """One image as uint8 [C, image_size, image_size], with its (width, height, mode).

    A decompression bomb raises only where `_bombs_are_errors` is in force (the workers).

    The first frame of an animation; palette, alpha, CMYK and 16-bit images converted by
    Pillow's `convert` (alpha dropped, colours kept); the shorter side resized to `image_size`
    (bicubic, antialiased) and the centre cropped. An image already `image_size` square is
    copied as decoded, bit for bit.
    """
    from PIL import Image

    try:
        with Image.open(path) as opened:
            header = (opened.size[0], opened.size[1], opened.mode)
            if getattr(opened, "is_animated", False):
                opened.seek(0)
            img = opened.convert("L" if gray else "RGB")
    except (OSError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: not a readable image: {e}") from e
    w, h = img.size
    if (w, h) != (image_size, image_size):
        scale = image_size / min(w, h)
        nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - image_size) // 2, (nh - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
    a = np.asarray(img, dtype=np.uint8)
    return (a[None] if gray else a.transpose(2, 0, 1)), header


def _header_chunk_safe(paths: list[Path]) -> list[tuple[int, int, str] | str]:
    out: list[tuple[int, int, str] | str] = []
    for p in paths:
        try:
            out.append(read_header(p))
        except ValueError as e:
            out.append(str(e))
    return out


def _decode_chunk(args: tuple[str, int, list[str], int, bool]) -> list[tuple[int, int, str]]:
    """Worker: decode `paths` into rows start.. of the .npy file at `target`, in one write.

    Returns each file's (width, height, mode), for the checks only a whole pass can make.
    """
    target, start, paths, image_size, gray = args
    local = np.empty((len(paths), 1 if gray else 3, image_size, image_size), dtype=np.uint8)
    headers = []
    for i, p in enumerate(paths):
        local[i], header = decode(p, image_size, gray)
        headers.append(header)
    out = np.load(target, mmap_mode="r+")
    out[start : start + len(paths)] = local
    out.flush()
    return headers


# ---------------------------------------------------------------- the prepared dataset


@dataclass(frozen=True)
class PrepareSettings:
    """What, besides the files, decides the prepared arrays (part of the cache key)."""

    image_size: int | None = None  # None: the images' common size
    test_fraction: float = 0.1  # held out when the folder has no test split
    split_seed: int = 0


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _chunks(items: list[Path], size: int) -> list[list[Path]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _PlainProgress:
    """Progress as plain lines (a log, not a terminal): the start, every 10%, the end."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done, self.next = total, desc, 0, 0.1
        self.start = time.monotonic()
        print(f"{desc}: {total} images", file=sys.stderr, flush=True)

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            seconds = time.monotonic() - self.start
            print(f"{self.desc}: done in {seconds:.1f} s", file=sys.stderr, flush=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.total and self.done / self.total >= self.next and self.done < self.total:
            print(f"{self.desc}: {self.done}/{self.total}", file=sys.stderr, flush=True)
            self.next = int(10 * self.done / self.total + 1) / 10


def _progress(total: int, desc: str, quiet: bool) -> Any:
    """A tqdm bar on a terminal, plain lines otherwise, nothing when `quiet` (trials)."""
    if quiet:
        from tqdm import tqdm  # type: ignore[import-untyped]

        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="img", file=sys.stderr)
    return _PlainProgress(total, desc)


def inspect_headers_safe(
    scan: FolderScan, workers: int | None = None, quiet: bool = True
) -> tuple[list[tuple[int, int, str]], list[str]]:
    """(headers of the readable files, one message per unreadable file), for a report."""
    files = scan.all_files()
    good: list[tuple[int, int, str]] = []
    bad: list[str] = []
    with (
        ProcessPoolExecutor(workers or default_workers()) as pool,
        _progress(len(files), "reading headers", quiet) as bar,
    ):
        for part in pool.map(_header_chunk_safe, _chunks(files, 256)):
            for h in part:
                if isinstance(h, str):
                    bad.append(h)
                else:
                    good.append(h)
            bar.update(len(part))
    return good, bad


def choose_size(
    scan: FolderScan, headers: list[tuple[int, int, str]], image_size: int | None
) -> tuple[int, bool]:
    """(image side, grayscale) for the prepared arrays; ValueError on mixed sizes unset."""
    sizes = Counter((w, h) for w, h, _ in headers)
    gray = all(mode in _GRAY_MODES for _, _, mode in headers)
    if image_size is not None:
        return image_size, gray
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5))
        raise ValueError(
            f"data_dir {scan.root}: images differ in size ({len(sizes)} sizes: {shown}"
            f"{', ...' if len(sizes) > 5 else ''}); set image_size (the shorter side is resized "
            "to it and the centre cropped)"
        )
    ((w, h),) = sizes
    return min(w, h), gray


def fingerprint(scan: FolderScan, settings: PrepareSettings) -> tuple[str, list[list[Any]]]:
    """(hex key, manifest rows [relpath, size, mtime_ns, split, label]) of a scan + settings."""
    rows: list[list[Any]] = []

    def add(root: Path, rel: str, split: str, label: int) -> None:
        path = os.path.join(root, rel)
        try:
            st = os.stat(path)
        except OSError as e:
            raise ValueError(f"{path}: cannot be read: {e.strerror or e}") from e
        rows.append([rel, st.st_size, st.st_mtime_ns, split, label])

    for split, items in scan.splits.items():
        for rel, y in items:
            add(scan.root, rel, split, y)
    if scan.unlabeled_root is not None:
        for rel in scan.unlabeled:
            add(scan.unlabeled_root, rel, "unlabeled", -1)
    h = hashlib.sha256()
    h.update(json.dumps([FORMAT_VERSION, settings.__dict__, scan.classes]).encode())
    h.update(str(scan.root.resolve()).encode())
    h.update(str(scan.unlabeled_root.resolve() if scan.unlabeled_root else "").encode())
    h.update(json.dumps(rows).encode())
    return h.hexdigest()[:16], rows


def cache_path(cache_dir: str | Path, scan: FolderScan, key: str) -> Path:
    return Path(cache_dir).expanduser() / f"{scan.root.resolve().name}-{key}"


@dataclass(frozen=True)
class Prepared:
    """A prepared dataset's arrays (memory maps) and manifest."""

    path: Path
    arrays: dict[str, np.ndarray]  # train_x/_y, test_x/_y, [val_x/_y], [unlabeled_x]
    manifest: dict[str, Any]


def open_prepared(path: Path) -> Prepared:
    """Map a prepared folder's arrays copy-on-write (shared pages, private only if written)."""
    manifest = json.loads((path / MANIFEST).read_text())
    arrays = {name: np.load(path / f"{name}.npy", mmap_mode="c") for name in manifest["arrays"]}
    return Prepared(path, arrays, manifest)


def _held_out_test(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified (train, test) split of indices, at least one per class each side."""
    from .rows import stratified_take

    rng = np.random.default_rng(seed)
    test, train = stratified_take(labels, np.arange(len(labels)), fraction, rng, keep=1)
    return train, test


def prepare(
    data_dir: str | Path,
    cache_dir: str | Path,
    *,
    unlabeled_dir: str | Path | None = None,
    settings: PrepareSettings = PrepareSettings(),
    workers: int | None = None,
    quiet: bool = True,
    scan: FolderScan | None = None,
) -> Prepared:
    """The prepared dataset of a folder: reused when its key exists, else decoded now.

    Raises:
        ValueError: a bad layout, a corrupt, truncated, oversized (decompression bomb) or
            unreadable image (named), or mixed sizes without `settings.image_size`.
    """
    scan = scan or scan_folder(data_dir, unlabeled_dir)
    key, rows = fingerprint(scan, settings)
    final = cache_path(cache_dir, scan, key)
    if (final / MANIFEST).is_file():
        return open_prepared(final)
    start = time.monotonic()
    # One decoding pass. Its size and channels are guessed from the first file's header and
    # checked against every file's: a folder of mixed sizes without image_size is an error;
    # a colour image in a folder whose first image is gray means a second, colour pass.
    first_w, first_h, first_mode = read_header(scan.root / scan.splits["train"][0][0])
    size = settings.image_size or min(first_w, first_h)
    gray = first_mode in _GRAY_MODES
    made = [d for d in (final.parent, *final.parent.parents) if not d.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".partial-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        arrays, headers = _write_arrays(scan, tmp, size, gray, settings, workers, quiet)
        checked, all_gray = choose_size(scan, headers, settings.image_size)
        assert checked == size  # choose_size raised on mixed sizes; else the guess holds
        if gray and not all_gray:
            arrays, headers = _write_arrays(scan, tmp, size, False, settings, workers, quiet)
        chans = 1 if all_gray else 3
        n_images = sum(len(i) for i in scan.splits.values()) + len(scan.unlabeled)
        manifest = {
            "format_version": FORMAT_VERSION,
            "fingerprint": key,
            "data_dir": str(scan.root.resolve()),
            "unlabeled_dir": str(scan.unlabeled_root.resolve()) if scan.unlabeled_root else None,
            "settings": settings.__dict__,
            "image_size": size,
            "channels": chans,
            "classes": scan.classes,
            "arrays": arrays,
            "test_held_out": "test" not in scan.splits,
            "sizes_found": {
                f"{w}x{h}": n for (w, h), n in Counter((w, h) for w, h, _ in headers).items()
            },
            "modes_found": dict(Counter(m for _, _, m in headers)),
            "skipped": {r: len(p) for r, p in scan.skipped.items()},
            "images": n_images,
            "seconds": round(time.monotonic() - start, 2),
            "files": rows,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent winner: a real failure
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in made:  # folders this call created (the cache, a storage path): gone again
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    shutil.rmtree(tmp, ignore_errors=True)  # a concurrent preparation won the rename
    return open_prepared(final)


def _write_arrays(
    scan: FolderScan,
    out: Path,
    size: int,
    gray: bool,
    settings: PrepareSettings,
    workers: int | None,
    quiet: bool,
) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Decode every split into `out/<name>.npy`: (array names written, every file's header)."""
    chans = 1 if gray else 3
    groups: dict[str, tuple[list[str], np.ndarray | None]] = {}
    root = str(scan.root)

    def joined(items: list[tuple[str, int]]) -> list[str]:  # str, not Path: 100k joins add up
        return [os.path.join(root, rel) for rel, _ in items]

    train = scan.splits["train"]
    train_y = np.array([y for _, y in train], dtype=np.int64)
    train_paths = joined(train)
    if "test" in scan.splits:
        test = scan.splits["test"]
        groups["test"] = (joined(test), np.array([y for _, y in test]))
        keep = np.arange(len(train))
    else:
        keep, held = _held_out_test(train_y, settings.test_fraction, settings.split_seed)
        groups["test"] = ([train_paths[i] for i in held], train_y[held])
    groups["train"] = ([train_paths[i] for i in keep], train_y[keep])
    if "val" in scan.splits:
        val = scan.splits["val"]
        groups["val"] = (joined(val), np.array([y for _, y in val]))
    if scan.unlabeled_root is not None:
        uroot = str(scan.unlabeled_root)
        groups["unlabeled"] = ([os.path.join(uroot, rel) for rel in scan.unlabeled], None)
    tasks = []
    names = []
    n_workers = workers or default_workers()
    total = sum(len(paths) for paths, _ in groups.values())
    # a few tasks per worker (even progress, little idle time at the end), each writing once
    chunk = max(_CHUNK_MIN, min(_CHUNK_MAX, total // (8 * n_workers)))
    for name, (paths, labels) in groups.items():
        target = out / f"{name}_x.npy"
        np.lib.format.open_memmap(
            target, mode="w+", dtype=np.uint8, shape=(len(paths), chans, size, size)
        ).flush()
        names.append(f"{name}_x")
        if labels is not None:
            np.save(out / f"{name}_y.npy", labels.astype(np.int64))
            names.append(f"{name}_y")
        tasks += [
            (str(target), i, paths[i : i + chunk], size, gray) for i in range(0, len(paths), chunk)
        ]
    headers: list[tuple[int, int, str]] = []
    with (
        ProcessPoolExecutor(n_workers, initializer=_bombs_are_errors) as pool,
        _progress(total, f"preparing {scan.root.name} at {size}px", quiet) as bar,
    ):
        for part in pool.map(_decode_chunk, tasks):
            headers += part
            bar.update(len(part))
    return names, headers
