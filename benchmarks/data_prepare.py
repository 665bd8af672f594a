"""Preparing a user's image folder: throughput, the per-step data cost, a trial's private memory.

On two folders of at least 50,000 images, written here with Pillow:
- `fmnist-png`: Fashion-MNIST (Debian's `dataset-fashion-mnist`) as PNG class folders,
  `train/` and `test/` (70,000 images, 28x28 gray);
- `jpeg64`: generated 64x64 RGB JPEGs, 10 classes (`--jpeg-count`, default 50,000).

For each it prints:
1. preparation throughput (images/s of `tune-app data --prepare`'s code path, cold cache)
   against a bare decode-and-resize loop over the same files with the same number of processes
   that writes nothing (target: >= 0.8 of it);
2. the per-step data cost of gathering a batch (64 random rows) from the memory map, against
   one `vit_micro` SL training step at batch 64 on the same images (target: <= 5%); beside it
   the same gather from a private copy and the augmentation both paths share;
3. the unique set size (USS, private memory) of a process that has built a trial's splits of
   the prepared data, with the memory map (views) and with a private copy of every split.

    python -m benchmarks.data_prepare [--workdir /tmp/tune-app-bench-data] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")
MB = 2**20


def write_folders(work: Path, jpeg_count: int, fmnist_count: int) -> dict[str, Path]:
    """The two benchmark folders (written once; reused when present)."""
    from PIL import Image

    from tests.support import write_image_folder
    from trainers.data import load_dataset

    out = {"fmnist-png": work / "fmnist-png", "jpeg64": work / "jpeg64"}
    if not (out["fmnist-png"] / ".done").exists():
        shutil.rmtree(out["fmnist-png"], ignore_errors=True)
        raw = load_dataset("fashion_mnist", REAL_FMNIST)
        names = [f"class{i}" for i in range(10)]
        share = fmnist_count / 70_000  # the same share of each split
        for split, x, y in (("train", raw.train_x, raw.train_y), ("test", raw.test_x, raw.test_y)):
            k = round(len(x) * share)
            write_image_folder(out["fmnist-png"] / split, x[:k].numpy(), y[:k].numpy(), names)
        (out["fmnist-png"] / ".done").touch()
    if not (out["jpeg64"] / ".done").exists():
        shutil.rmtree(out["jpeg64"], ignore_errors=True)
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)  # a pattern per class
        for i in range(jpeg_count):
            c = i % 10
            folder = out["jpeg64"] / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            img = Image.fromarray(base[c]).resize((64, 64), Image.Resampling.BILINEAR)
            noise = rng.integers(-20, 21, (64, 64, 3))
            arr = np.clip(np.asarray(img).astype(int) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{i:06d}.jpg", quality=90)
        (out["jpeg64"] / ".done").touch()
    return out


def _bare_chunk(args: tuple[list[Path], int]) -> int:
    """Decode and resize, keep nothing: the loop preparation is measured against."""
    from PIL import Image

    paths, size = args
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB" if im.mode not in ("L",) else "L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            np.asarray(im)
    return len(paths)


def bare_loop(files: list[Path], size: int, workers: int) -> float:
    """Seconds for the bare loop over `files` with `workers` processes."""
    chunks = [(files[i : i + 64], size) for i in range(0, len(files), 64)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        assert sum(pool.map(_bare_chunk, chunks)) == len(files)
    return time.perf_counter() - start


def drop_page_cache_of(folder: Path) -> None:
    """Ask the kernel to forget the files' pages (best effort: needs root and Linux)."""
    try:
        subprocess.run(["sync"], check=False)
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        pass


def preparation(folder: Path, cache: Path, workers: int) -> tuple[float, float, int, Path]:
    """(prepare seconds, bare-loop seconds, images, prepared path), bare loop first."""
    from trainers.data.folder import prepare, scan_folder

    scan = scan_folder(folder)
    files = scan.all_files()
    size = 28 if "fmnist" in folder.name else 64
    bare_loop(files[:2000], size, workers)  # warm the files into the page cache for both
    bare_loop(files, size, workers)
    bare = bare_loop(files, size, workers)
    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    p = prepare(folder, cache, workers=workers)  # listing and fingerprint included
    return time.perf_counter() - start, bare, len(files), p.path


def step_costs(folder: Path, cache: Path) -> dict[str, float]:
    """Seconds per batch of 64: gathering rows from the memory map, from a private copy, the
    augmentation both paths share, and one vit_micro SL training step (one thread)."""
    import torch

    import trainers.data.rows as rows_mod
    from trainers.data import DataOptions, build_splits
    from trainers.models import create_model
    from trainers.steps import Batch, BatchSource, step_loss

    torch.set_num_threads(1)
    opts = DataOptions(cache_dir=str(cache))
    rows_mod.PRIVATE_COPY_MAX_BYTES = 0  # batches from the memory map, as a large set reads
    mapped = build_splits("folder", folder, labeled_fraction=1.0, options=opts)
    rows_mod.PRIVATE_COPY_MAX_BYTES = 1 << 62
    copied = build_splits("folder", folder, labeled_fraction=1.0, options=opts)
    source = BatchSource(mapped, 64, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    n = len(mapped.train_x)
    idx = torch.randint(n, (64,), generator=g)
    x, plan = mapped.train_x[idx], source.draws(idx)
    model = create_model("vit_micro", mapped.num_classes, mapped.image_size, mapped.in_chans)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = Batch(source._prepare(x, plan), torch.randint(mapped.num_classes, (64,)))

    def step() -> None:
        loss = step_loss(model, "sl", batch, alpha=0.5)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    jobs = {
        "map": lambda: mapped.train_x[torch.randint(n, (64,), generator=g)],
        "copy": lambda: copied.train_x[torch.randint(n, (64,), generator=g)],
        "augment": lambda: source._prepare(x, plan),
        "step": step,
    }
    timings = {}
    for name, f in jobs.items():
        f()
        reps = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(20):
                f()
            reps.append((time.perf_counter() - start) / 20)
        timings[name] = float(np.median(reps))
    return timings


USS_CHILD = """
import json, sys
import trainers.data.rows as rows_mod

def uss():  # private memory: what this process alone holds (Linux's smaps_rollup)
    lines = open("/proc/self/smaps_rollup").read().splitlines()[1:]
    fields = dict(line.split(":") for line in lines)
    return sum(int(fields[k].split()[0]) * 1024 for k in ("Private_Clean", "Private_Dirty"))

from trainers.data import DataOptions, build_splits
# "map": every split a view of the memory map; "copy": every split a private tensor
rows_mod.PRIVATE_COPY_MAX_BYTES = 0 if sys.argv[3] == "map" else 1 << 62
before = uss()
s = build_splits("folder", sys.argv[1], labeled_fraction=0.5, ssl_source="all",
                 options=DataOptions(cache_dir=sys.argv[2]))
n = len(s.train_x) + len(s.val_x) + len(s.test_x) + len(s.ssl_x)
print(json.dumps({"uss": uss(), "before": before,
                  "kind": type(s.train_x).__name__, "images": n}))
"""


def uss(folder: Path, cache: Path, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", USS_CHILD, str(folder), str(cache), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/tune-app-bench-data")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--jpeg-count", type=int, default=50_000)
    ap.add_argument("--fmnist-count", type=int, default=70_000)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    folders = write_folders(work, args.jpeg_count, args.fmnist_count)
    rows = []
    for name, folder in folders.items():
        cache = work / f"cache-{name}"
        prep, bare, n, path = preparation(folder, cache, args.workers)
        t = step_costs(folder, cache)
        mapped, copied = uss(folder, cache, "map"), uss(folder, cache, "copy")
        size = sum(f.stat().st_size for f in path.glob("*.npy")) / MB
        rows.append((name, n, size, n / prep, n / bare, bare / prep, t, mapped, copied))
    print(f"workers: {args.workers}; per-batch times at batch 64, one thread")
    print(
        f"{'folder':<11} {'images':>7} {'prepared':>9} {'prep img/s':>10} {'bare img/s':>10} "
        f"{'ratio':>6} {'map ms':>7} {'copy ms':>7} {'augment ms':>10} {'step ms':>8} "
        f"{'map/step':>8} {'USS map':>8} {'USS copy':>9}"
    )
    for name, n, size, p, b, r, t, m, c in rows:
        print(
            f"{name:<11} {n:>7} {size:>7.0f}MB {p:>10.0f} {b:>10.0f} {r:>6.2f} "
            f"{t['map'] * 1e3:>7.2f} {t['copy'] * 1e3:>7.2f} {t['augment'] * 1e3:>10.2f} "
            f"{t['step'] * 1e3:>8.1f} {t['map'] / t['step']:>8.1%} "
            f"{(m['uss'] - m['before']) / MB:>6.0f}MB {(c['uss'] - c['before']) / MB:>7.0f}MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
