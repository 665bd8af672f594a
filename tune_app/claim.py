"""One driver per experiment (and per `train --out` folder): an exclusive claim on a lock file.

The claim is an `fcntl.flock` on `<parent>/.<name>.lock`, taken without waiting and held for the
driver's lifetime. The kernel drops it when the process ends, however it ends, so a lock file
left by a dead process never blocks; there is no check-then-create window, because taking the
lock is the check. The file records who holds it (pid, host, since when) for the message a
second driver gets. It lives beside the folder, not in it, so that a new experiment can be
claimed before its folder exists.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tune_app.settings import UserInputError


class ClaimHeld(UserInputError):
    """Another live process holds the claim: bad input (exit 2), naming the holder."""


def lock_path(folder: Path) -> Path:
    """The lock file of `folder`, however the path is spelled (`.`, relative, absolute)."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def claim(folder: Path, what: str) -> Iterator[Path]:
    """Hold the exclusive claim on `folder` for the body of the `with`.

    Args:
        folder: the experiment or run folder (it need not exist yet).
        what: how the message names it, e.g. "experiment" or "run folder".

    Yields:
        The lock file's path.

    Raises:
        ClaimHeld: another live process holds the claim; the message names it.
    """
    path = lock_path(folder)
    created = _make_parents(path.parent)
    try:
        fd = _acquire(path, folder, what)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield path
    finally:
        # Unlink while still holding the lock: a process that opened the old file then finds
        # it unlinked and retries on a new one (see _acquire), so two holders never coexist.
        path.unlink(missing_ok=True)
        os.close(fd)
        _remove_empty(created)


def _acquire(path: Path, folder: Path, what: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a name too long for the filesystem, no permission, ...
            raise UserInputError(f"cannot claim {what} {folder}: {path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ClaimHeld(
                f"{what} {folder} is in use by {holder}; wait for it to end or stop it "
                f"(lock file {path})"
            ) from None
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder we waited behind released and unlinked it: take a new one
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote (it may not have written yet)."""
    for _ in range(20):
        raw = os.pread(fd, 4096, 0)
        try:
            info = json.loads(raw)
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "another process (it has not said who yet)"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and missing parents; return those created (deepest first)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder should be, no permission, ...
        raise UserInputError(f"cannot create folder {folder}: {e.strerror or e}") from e
    return missing


def _remove_empty(created: list[Path]) -> None:
    """Bad input writes nothing: drop the folders the claim created if still empty."""
    for p in created:
        try:
            p.rmdir()
        except OSError:  # not empty (the run wrote there) or already gone: keep it
            break
