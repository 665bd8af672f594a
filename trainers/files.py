"""The one way a file is written whole: through a temporary name beside it, then a rename.

A reader, a crash or a concurrent writer sees the old file or the new one, never half of one.
Torch-free; used by every package that writes a result, checkpoint or record.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it to `path`.

    Creates missing parent folders. The temporary name is unique, so concurrent writers of
    one path never share it (the last rename wins); it is removed when `write` fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """`write_atomic` of UTF-8 text."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
