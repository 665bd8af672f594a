"""`tune-app data` (check a folder, prepare it ahead of a search) and the driver's preparation.

A search or `train` on a prepared dataset (`dataset: folder`, `tinyimagenet`) decodes it here,
once, before any trial starts; the trials then map the prepared arrays (docs/data.md).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from trainers import TrialConfig
from tune_app.settings import UserInputError


def prepare_for(config: TrialConfig, where: str) -> dict[str, Any] | None:
    """Prepare `config`'s dataset now (progress bar on a terminal), say what was decided.

    `where` names the setting's source for errors (`space.yaml: trainer.dataset`). Returns
    the record a run keeps of it (`data_record`), None for data held in memory as read.
    """
    from trainers.data import prepare_dataset
    from trainers.pipeline import data_options

    try:
        prepared = prepare_dataset(
            config.dataset, config.data_dir, data_options(config), quiet=False
        )
    except ValueError as e:
        raise UserInputError(f"{where}: {e}") from e
    if prepared is None:
        return None
    print(f"tune-app: data: {describe(prepared.manifest)}: {prepared.path}", file=sys.stderr)
    return data_record(prepared.manifest, prepared.path)


def data_record(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """What an experiment or run folder keeps of its prepared data (`data.json`): the class
    names in label order, the fingerprint and where the arrays are, without the file list."""
    return {
        "prepared": str(path),
        "classes": manifest["classes"],
        **{k: manifest[k] for k in ("fingerprint", "data_dir", "unlabeled_dir", "image_size")},
        **{k: manifest[k] for k in ("channels", "test_held_out", "settings", "skipped")},
        "images": dict(Counter(row[3] for row in manifest["files"])),
    }


def describe(manifest: dict[str, Any]) -> str:
    """One line: what a prepared dataset holds and how it was made."""
    counts = Counter(row[3] for row in manifest["files"])
    order = ("train", "val", "test", "unlabeled")
    splits = ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
    held = (
        f"; test split held out: {manifest['settings']['test_fraction']:.0%} of each class "
        f"(seed {manifest['settings']['split_seed']}), as the folder has no test/"
        if manifest["test_held_out"]
        else ""
    )
    skipped = sum(manifest["skipped"].values())
    side = manifest["image_size"]
    return (
        f"{len(manifest['classes'])} classes, {splits} images as "
        f"{manifest['channels']}x{side}x{side} uint8{held}"
        f"{f'; {skipped} non-image files skipped' if skipped else ''} (prepared in "
        f"{manifest['seconds']} s)"
    )


def data_command(
    path: str,
    image_size: int | None,
    unlabeled: str | None,
    prepare: bool,
    data_cache: str | None,
    model: str | None = None,
) -> int:
    """Body of `tune-app data`: report a folder's contents; with `prepare`, build the cache;
    with `model`, what that model becomes at the folder's size (SSL path, grid, sizes)."""
    from trainers.data.folder import (
        PrepareSettings,
        choose_size,
        inspect_headers_safe,
        scan_folder,
    )
    from trainers.data.folder import prepare as build
    from trainers.data.loaders import default_cache

    if image_size is not None and not 4 <= image_size <= 1024:
        raise UserInputError(f"--image-size {image_size}: allowed: an integer in [4, 1024]")
    try:
        scan = scan_folder(path, unlabeled)
    except ValueError as e:
        raise UserInputError(str(e)) from e
    quiet = not sys.stderr.isatty()  # the header pass is quick: a bar only on a terminal
    headers, bad = inspect_headers_safe(scan, quiet=quiet)
    out = sys.stdout
    print(f"{scan.root}: {len(scan.classes)} classes", file=out)
    for split in scan.splits:
        per = scan.per_class(split)
        print(f"  {split}: {sum(per.values())} images", file=out)
        for name, n in per.items():
            print(f"    {name:<24} {n}", file=out)
    if scan.unlabeled_root is not None:
        print(f"  unlabeled ({scan.unlabeled_root}): {len(scan.unlabeled)} images", file=out)
    sizes = Counter(f"{w}x{h}" for w, h, _ in headers)
    modes = Counter(m for _, _, m in headers)
    print(f"  sizes: {', '.join(f'{s} ({n})' for s, n in sizes.most_common(8))}", file=out)
    print(f"  modes: {', '.join(f'{m} ({n})' for m, n in modes.most_common())}", file=out)
    for reason, files in scan.skipped.items():
        shown = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "")
        print(f"  skipped ({reason}): {len(files)}: {shown}", file=out)
    if bad:
        for message in bad[:20]:
            print(f"  unreadable: {message}", file=out)
        raise UserInputError(
            f"{path}: {len(bad)} unreadable image(s) (listed above); remove or fix them"
        )
    try:
        size, gray = choose_size(scan, headers, image_size)
    except ValueError as e:
        raise UserInputError(str(e)) from e
    print(f"  prepared as: {1 if gray else 3}x{size}x{size} uint8", file=out)
    if model is not None:
        from trainers import ConfigError, TrialConfig
        from trainers.models import model_for, model_summary

        try:
            built = model_for(TrialConfig(model=model), len(scan.classes), size, 1 if gray else 3)
        except (ConfigError, ValueError) as e:
            raise UserInputError(f"--model {model}: {e}") from e
        for key, value in model_summary(built, size).items():
            print(f"  model {model}: {key}: {value}", file=out)
    if not prepare:
        print("  (not prepared: add --prepare to decode it into the cache now)", file=out)
        return 0
    cache = data_cache or default_cache()
    try:
        prepared = build(
            path,
            cache,
            unlabeled_dir=unlabeled,
            settings=PrepareSettings(image_size),
            quiet=False,
            scan=scan,
        )
    except ValueError as e:
        raise UserInputError(str(e)) from e
    print(f"prepared: {prepared.path} ({describe(prepared.manifest)})", file=out)
    return 0


def cache_path_arg(value: str | None) -> str | None:
    """`--data-cache` as an absolute path (trials run in other folders)."""
    return None if value is None else str(Path(value).expanduser().resolve())
