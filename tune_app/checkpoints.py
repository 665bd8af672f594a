"""Reading a run's saved state safely: tensors and plain values only, never pickled code.

A checkpoint can come from somewhere else (a copied run folder, shared storage every Ray worker
reads). `torch.load(weights_only=True)` unpickles only tensors, containers and plain values, so
a crafted file is refused before any of its code can run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers.pipeline import STATE_VERSION

# What every `Trainer.state_dict` holds; a dict without these is not one of our checkpoints.
REQUIRED_KEYS = ("version", "config", "epoch", "model", "history", "rng")
REQUIRED_TYPES = {"config": dict, "epoch": int, "model": dict, "history": list, "rng": dict}


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint of this version (corrupt, foreign, crafted)."""


def load_state(path: str | Path) -> dict[str, Any]:
    """The state dict saved at `path`, loaded on the CPU with `weights_only=True`.

    Args:
        path: a file written by `torch.save(trainer.state_dict(), ...)`.

    Returns:
        The state dict, checked to be one of this version.

    Raises:
        CheckpointError: the file is unreadable, truncated, foreign, crafted (it asks to run
            code) or written by another state version; the message names the file.
    """
    try:
        # Any failure here (zip, pickle, EOF, refused global) means the same to the user: the
        # file is not a checkpoint this program can use; the first line of the reason is kept.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised as CheckpointError with the cause
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: not a loadable checkpoint ({reason})") from e
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a tune-app checkpoint (keys missing)")
    wrong = [k for k, kind in REQUIRED_TYPES.items() if not isinstance(state[k], kind)]
    if wrong:  # right keys, wrong contents: foreign or crafted, never half-trusted
        raise CheckpointError(f"{path}: not a tune-app checkpoint (bad {', '.join(wrong)})")
    if state["version"] != STATE_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {state['version']!r}; this tune-app reads "
            f"version {STATE_VERSION}"
        )
    return state
